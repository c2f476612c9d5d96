import Foundation
import Testing

@testable import AuthProxy

/// Parses `literal` (a JSON string literal) back with Foundation's JSON parser.
private func decoded(_ literal: String) throws -> String? {
  let wrapped = "{\"v\":" + literal + "}"
  let object = try JSONSerialization.jsonObject(with: Data(wrapped.utf8)) as? [String: Any]
  return object?["v"] as? String
}

@Suite struct JSONTextTests {

  @Test(arguments: [
    ("plain", "\"plain\""), ("say \"hi\"", "\"say \\\"hi\\\"\""), ("a\\b", "\"a\\\\b\""), ("line\nnext", "\"line\\nnext\""),
    ("cr\r", "\"cr\\r\""), ("tab\t", "\"tab\\t\""), ("\u{00}", "\"\\u0000\""), ("\u{1F}", "\"\\u001f\""),
    ("\u{7F}", "\"\\u007f\""), ("\u{2028}", "\"\\u2028\""), ("\u{2029}", "\"\\u2029\""), ("", "\"\""),
  ])
  func escapes(value: String, literal: String) {
    #expect(JSONText.quoted(value) == literal)
  }

  @Test func keepsNonASCIIAsIs() {
    #expect(JSONText.quoted("café 😀 /") == "\"café 😀 /\"")
  }

  @Test func escapesEveryControlCharacter() {
    for value in 0..<0x20 {
      let text = String(Character(Unicode.Scalar(UInt8(value))))
      let literal = JSONText.quoted(text)
      #expect(!literal.unicodeScalars.contains { $0.value < 0x20 }, "U+\(value) left raw")
    }
  }

  @Test func outputParsesBackToTheSameString() throws {
    var everything = "quote \" backslash \\ slash / "
    everything += String((0..<0x20).map { Character(Unicode.Scalar(UInt8($0))) })
    everything += "\u{7F} \u{2028} \u{2029} é 中 😀"
    let literal = JSONText.quoted(everything)
    #expect(try decoded(literal) == everything)
    #expect(!literal.contains("\u{2028}") && !literal.contains("\u{2029}"))
  }

  @Test func objectKeepsMemberOrderAndRawValues() throws {
    let text = JSONText.object([("b", "1"), ("a", JSONText.quoted("x\"y")), ("n", "null"), ("t", "true")])
    #expect(text == "{\"b\":1,\"a\":\"x\\\"y\",\"n\":null,\"t\":true}")
    let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    #expect(object["a"] as? String == "x\"y")
    #expect(object["b"] as? Int == 1)
    #expect(object["n"] is NSNull)
  }

  @Test func objectQuotesTheKeys() {
    #expect(JSONText.object([("we\"ird", "0")]) == "{\"we\\\"ird\":0}")
    #expect(JSONText.object([]) == "{}")
  }
}
