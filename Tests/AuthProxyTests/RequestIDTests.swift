import Testing

@testable import AuthProxy

/// `xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx`, lower-case hex.
private func isLowerCaseUUIDv4(_ text: String) -> Bool {
  let groups = text.split(separator: "-", omittingEmptySubsequences: false)
  guard groups.map(\.count) == [8, 4, 4, 4, 12] else { return false }
  guard text.allSatisfy({ $0 == "-" || ("0"..."9").contains($0) || ("a"..."f").contains($0) }) else { return false }
  return groups[2].first == "4" && "89ab".contains(groups[3].first!)
}

@Suite struct RequestIDTests {

  @Test(arguments: [
    "abc", "req-123", "a", "0f8fad5b-d9cb-469f-a165-70867728950e", "trace:span.1_2-3", String(repeating: "x", count: 128),
  ])
  func keepsASaneIncomingID(incoming: String) {
    #expect(RequestID.isSane(incoming))
    #expect(RequestID.pick(incoming) == incoming)
  }

  @Test(arguments: [
    "", String(repeating: "x", count: 129), "has space", "tab\there", "new\nline", "café", "id/with/slash",
    "quote\"d", "semi;colon", "percent%20", "emoji😀",
  ])
  func replacesAnInsaneIncomingID(incoming: String) {
    #expect(!RequestID.isSane(incoming))
    let picked = RequestID.pick(incoming)
    #expect(picked != incoming)
    #expect(isLowerCaseUUIDv4(picked))
  }

  @Test func generatesAnIDWhenNoneWasSent() {
    #expect(isLowerCaseUUIDv4(RequestID.pick(nil)))
  }

  @Test func generatedIDsAreVersion4UUIDs() {
    for _ in 0..<100 {
      let id = RequestID.generate()
      #expect(id.count == 36)
      #expect(isLowerCaseUUIDv4(id), "\(id)")
    }
  }

  @Test func generatedIDsAreSaneThemselves() {
    #expect(RequestID.isSane(RequestID.generate()))
  }

  @Test func generatedIDsAreUnique() {
    let ids = Set((0..<1000).map { _ in RequestID.generate() })
    #expect(ids.count == 1000)
  }
}
