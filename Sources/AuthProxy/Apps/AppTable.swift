import FoundationEssentials
import Glibc

/// The apps of `--apps-file`, validated: names, key hashes and uids are unique.
public struct AppTable: Sendable, Equatable {
  public let apps: [AppRule]

  public init(apps: [AppRule]) { self.apps = apps }

  /// Most apps a file may name (metric labels are one per app).
  public static let maxApps = 1000
  static let fields: Set<String> = ["name", "key_sha256", "uid", "routes", "rate_limit", "burst", "max_concurrency"]

  /// Reads `path` with the credential files' rule (owner-only, or root-owned and group-readable;
  /// `CredentialFile.read`) and validates it.
  public static func load(path: String) -> Result<AppTable, AppsFileError> {
    let file: CredentialFile
    do {
      file = try CredentialFile.read(path, ownerOnly: true, source: "--apps-file")
    } catch {
      return .failure(AppsFileError(path: path, problems: [error.reason]))
    }
    return parse(file.contents, path: path)
  }

  /// Validates the JSON of an apps file. Every problem is collected; none quotes a key.
  public static func parse(_ json: [UInt8], path: String) -> Result<AppTable, AppsFileError> {
    func fail(_ problems: [String]) -> Result<AppTable, AppsFileError> { .failure(AppsFileError(path: path, problems: problems)) }
    let document: JSONValue
    do {
      document = try JSONDecoder().decode(JSONValue.self, from: Data(json))
    } catch {
      return fail([#"is not valid JSON; write {"apps":[{"name":"billing","key_sha256":"<64 hex digits>"}]}"#])
    }
    guard case .object(let top) = document else { return fail([#"is not a JSON object with an "apps" array"#]) }
    var problems: [String] = []
    for key in top.keys.sorted() where key != "apps" { problems.append("unknown member '\(key)' (only \"apps\")") }
    guard case .array(let list)? = top["apps"] else { return fail(problems + [#""apps" must be an array of apps"#]) }
    if list.count > maxApps { return fail(problems + ["names \(list.count) apps; at most \(maxApps)"]) }
    var apps: [AppRule] = []
    var names: Set<String> = []
    var keys: [[UInt8]: String] = [:]
    var uids: [UInt32: String] = [:]
    for (index, item) in list.enumerated() {
      guard case .object(let fields) = item else {
        problems.append("apps[\(index)] is not an object")
        continue
      }
      switch parseApp(fields, index: index) {
      case .failure(let found): problems += found.problems
      case .success(let app):
        if !names.insert(app.name).inserted { problems.append("app \(app.name): the name is used twice") }
        if let key = app.keySHA256 {
          if let other = keys[key] {
            problems.append("app \(app.name): key_sha256 is the same as app \(other)'s")
          } else {
            keys[key] = app.name
          }
        }
        if let uid = app.uid {
          if let other = uids[uid] { problems.append("app \(app.name): uid \(uid) is app \(other)'s too") } else { uids[uid] = app.name }
        }
        apps.append(app)
      }
    }
    return problems.isEmpty ? .success(AppTable(apps: apps)) : fail(problems)
  }

  private static func parseApp(_ fields: [String: JSONValue], index: Int) -> Result<AppRule, AppsFileError> {
    var problems: [String] = []
    guard case .string(let name)? = fields["name"], isValidName(name) else {
      return .failure(
        AppsFileError(
          path: "",
          problems: [
            "apps[\(index)]: \"name\" is required: 1 to 64 of letters, digits, '.', '_' and '-' (it is a log field and a metric label)"
          ]))
    }
    let who = "app \(name)"
    for key in fields.keys.sorted() where !AppTable.fields.contains(key) {
      problems.append("\(who): unknown field '\(key)' (fields: \(AppTable.fields.sorted().joined(separator: ", ")))")
    }
    var key: [UInt8]?
    switch fields["key_sha256"] {
    case nil: break
    case .string(let hex)?:
      if let bytes = hexBytes(hex), bytes.count == 32 {
        key = bytes
      } else {
        problems.append("\(who): key_sha256 must be 64 hex digits, the SHA-256 of the key (printf %s \"$KEY\" | sha256sum)")
      }
    default: problems.append("\(who): key_sha256 must be a string of 64 hex digits")
    }
    var uid: UInt32?
    switch fields["uid"] {
    case nil: break
    case .number(let n)? where n >= 0 && n < 4_294_967_295 && n == n.rounded(): uid = UInt32(n)
    default: problems.append("\(who): uid must be a whole number from 0 to 4294967294")
    }
    var routes: RouteSet?
    switch fields["routes"] {
    case nil: break
    case .array(let items)?:
      var texts: [String] = []
      for item in items {
        if case .string(let text) = item {
          texts.append(text)
        } else {
          problems.append("\(who): routes must be strings like \"GET /api/v1/x*\"")
        }
      }
      switch RouteSet.parse(texts, origin: "the routes of app \(name) in --apps-file") {
      case .success(let set): routes = set
      case .failure(let errors): problems += errors.errors.map { "\(who): route \($0.description)" }
      }
    default: problems.append("\(who): routes must be an array of \"METHOD /path\" strings")
    }
    var rate: Double?
    switch fields["rate_limit"] {
    case nil: break
    case .string(let text)?:
      if let parsed = parseRate(text) {
        rate = parsed
      } else {
        problems.append("\(who): rate_limit '\(text)' is not a rate; write it like 5/s or 120/m")
      }
    default: problems.append("\(who): rate_limit must be a string like \"5/s\" or \"120/m\"")
    }
    let burst = positiveInt(fields["burst"], field: "burst", who: who, problems: &problems)
    let concurrency = positiveInt(fields["max_concurrency"], field: "max_concurrency", who: who, problems: &problems)
    if burst != nil && rate == nil { problems.append("\(who): burst needs rate_limit") }
    if key == nil && uid == nil { problems.append("\(who): give key_sha256 or uid, or it can never be identified") }
    guard problems.isEmpty else { return .failure(AppsFileError(path: "", problems: problems)) }
    return .success(
      AppRule(
        name: name, keySHA256: key, uid: uid, routes: routes, ratePerSecond: rate, burst: burst, maxConcurrency: concurrency))
  }

  private static func positiveInt(_ value: JSONValue?, field: String, who: String, problems: inout [String]) -> Int? {
    switch value {
    case nil: return nil
    case .number(let n)? where n >= 1 && n <= 1_000_000 && n == n.rounded(): return Int(n)
    default:
      problems.append("\(who): \(field) must be a whole number from 1 to 1000000")
      return nil
    }
  }

  /// "R/s" or "R/m" (R a positive number), in requests per second.
  public static func parseRate(_ text: String) -> Double? {
    let parts = text.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count == 2, let count = Double(parts[0].trimmingSpaces()), count.isFinite, count > 0, count <= 1_000_000 else {
      return nil
    }
    switch parts[1].trimmingSpaces() {
    case "s": return count
    case "m": return count / 60
    default: return nil
    }
  }

  static func isValidName(_ name: String) -> Bool {
    (1...64).contains(name.utf8.count)
      && name.utf8.allSatisfy { HTTPBytes.isAlphanumeric($0) || $0 == 0x2E || $0 == 0x5F || $0 == 0x2D }
  }

  static func hexBytes(_ text: String) -> [UInt8]? {
    let digits = Array(text.utf8)
    guard digits.count % 2 == 0 else { return nil }
    var out: [UInt8] = []
    var i = 0
    while i < digits.count {
      guard let high = HTTPBytes.hexValue(digits[i]), let low = HTTPBytes.hexValue(digits[i + 1]) else { return nil }
      out.append(UInt8(high << 4 | low))
      i += 2
    }
    return out
  }
}

/// Just enough JSON for a strict reading: unknown members and wrong types can be named.
enum JSONValue: Decodable, Equatable {
  case object([String: JSONValue])
  case array([JSONValue])
  case string(String)
  case number(Double)
  case bool(Bool)
  case null

  private struct Key: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
  }

  init(from decoder: any Decoder) throws {
    if let object = try? decoder.container(keyedBy: Key.self) {
      var members: [String: JSONValue] = [:]
      for key in object.allKeys { members[key.stringValue] = try object.decode(JSONValue.self, forKey: key) }
      self = .object(members)
    } else if var array = try? decoder.unkeyedContainer() {
      var items: [JSONValue] = []
      while !array.isAtEnd { items.append(try array.decode(JSONValue.self)) }
      self = .array(items)
    } else {
      let single = try decoder.singleValueContainer()
      if single.decodeNil() {
        self = .null
      } else if let b = try? single.decode(Bool.self) {
        self = .bool(b)
      } else if let n = try? single.decode(Double.self) {
        self = .number(n)
      } else {
        self = .string(try single.decode(String.self))
      }
    }
  }
}
