import Foundation

/// One documented answer of the API (Tests/Fixtures/api-contract/answers.json): the call it
/// answers, its status and headers, and its body bytes exactly as the API's docs show them.
public struct DocumentedAnswer: Sendable, CustomStringConvertible {
  public var name: String
  /// `login`, `refresh` or `logout`.
  public var call: String
  public var status: Int
  public var headers: [String: String]
  public var body: [UInt8]
  public var description: String { name }

  /// Tests/Fixtures/api-contract.
  public static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../Fixtures/api-contract").standardized.path

  /// Every documented answer, in the index's order (empty if the index cannot be read, which
  /// the contract tests' count check reports).
  public static let all: [DocumentedAnswer] = {
    guard let index = FileManager.default.contents(atPath: directory + "/answers.json"),
      let object = try? JSONSerialization.jsonObject(with: index) as? [String: Any],
      let answers = object["answers"] as? [[String: Any]]
    else { return [] }
    return answers.compactMap { entry in
      guard let name = entry["name"] as? String, let call = entry["call"] as? String, let status = entry["status"] as? Int,
        let file = entry["body"] as? String, let body = FileManager.default.contents(atPath: directory + "/" + file)
      else { return nil }
      return DocumentedAnswer(
        name: name, call: call, status: status, headers: entry["headers"] as? [String: String] ?? [:], body: [UInt8](body))
    }
  }()

  public static func named(_ name: String) -> DocumentedAnswer? { all.first { $0.name == name } }

  /// The body's JSON shape: keys and JSON types, values left out.
  public var shape: JSONShape? { JSONShape.of(body) }
}

/// The shape of a JSON document: object keys and the JSON type of every value, recursively. Two
/// answers with the same shape differ only in their values (`"client_id": 1` and `2` do;
/// `"client_id": "1"` does not).
public indirect enum JSONShape: Equatable, Sendable, Decodable, CustomStringConvertible {
  case null, bool, number, string
  case array([JSONShape])
  case object([String: JSONShape])

  public static func of(_ bytes: [UInt8]) -> JSONShape? { try? JSONDecoder().decode(JSONShape.self, from: Data(bytes)) }

  public init(from decoder: any Decoder) throws {
    let single = try decoder.singleValueContainer()
    // Bool before number: JSONDecoder reads neither as the other.
    if single.decodeNil() {
      self = .null
    } else if (try? single.decode(Bool.self)) != nil {
      self = .bool
    } else if (try? single.decode(Double.self)) != nil {
      self = .number
    } else if (try? single.decode(String.self)) != nil {
      self = .string
    } else if let elements = try? single.decode([JSONShape].self) {
      self = .array(elements)
    } else {
      self = .object(try single.decode([String: JSONShape].self))
    }
  }

  public var description: String {
    switch self {
    case .null: "null"
    case .bool: "bool"
    case .number: "number"
    case .string: "string"
    case .array(let elements): "[" + elements.map(\.description).joined(separator: ",") + "]"
    case .object(let members): "{" + members.keys.sorted().map { "\($0):\(members[$0]!)" }.joined(separator: ",") + "}"
    }
  }
}
