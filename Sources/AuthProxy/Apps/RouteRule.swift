/// One route rule: `METHOD /path-pattern` (issue 21, point 2). `ANY` matches every method; a
/// `*` at the end of the pattern matches any rest of the path. Patterns and paths are compared
/// after `RequestPolicy.normalized` (percent-decoding, dot segments, no trailing slash, ASCII
/// lower case), the same normalisation the `--api-prefix` and auth-path checks use, so
/// `/API/v1/./orders/` is the path `/api/v1/orders`.
public struct RouteRule: Sendable, Equatable, CustomStringConvertible {
  /// nil: `ANY`.
  public let method: String?
  /// The normalized pattern without its `*`.
  let path: [UInt8]
  /// The pattern ended in `*`.
  let wildcard: Bool
  /// As written, for messages.
  public let text: String

  public var description: String { text }

  /// Parses `METHOD /path-pattern`; nil with the reason when it is not one.
  public static func parse(_ text: String) -> Result<RouteRule, RouteSyntaxError> {
    let parts = text.split(separator: " ", omittingEmptySubsequences: true)
    guard parts.count == 2 else {
      return .failure(RouteSyntaxError(rule: text, reason: "write a route as METHOD /path, like \"GET /api/v1/products*\""))
    }
    let method = String(parts[0])
    guard !method.isEmpty, method.utf8.allSatisfy({ HTTPBytes.isTchar($0) }) else {
      return .failure(RouteSyntaxError(rule: text, reason: "'\(method)' is not an HTTP method (or ANY)"))
    }
    guard method == "ANY" || method == method.uppercased() else {
      return .failure(RouteSyntaxError(rule: text, reason: "methods are upper case: write \(method.uppercased())"))
    }
    var pattern = Array(parts[1].utf8)
    guard pattern.first == 0x2F else {
      return .failure(RouteSyntaxError(rule: text, reason: "the path pattern must start with /"))
    }
    let wildcard = pattern.last == 0x2A
    if wildcard { pattern.removeLast() }
    if pattern.contains(0x2A) {
      return .failure(RouteSyntaxError(rule: text, reason: "* may only end a pattern (it matches any rest of the path)"))
    }
    if pattern.contains(0x3F) || pattern.contains(0x23) {
      return .failure(RouteSyntaxError(rule: text, reason: "a pattern is a path only, without ? or #"))
    }
    // "/x/*": everything below /x, and /x itself; "/x*": any path that starts with "/x".
    let slashBeforeStar = wildcard && pattern.count > 1 && pattern.last == 0x2F
    var normal = RequestPolicy.normalized(pattern)
    if slashBeforeStar && normal != [0x2F] { normal.append(0x2F) }
    return .success(RouteRule(method: method == "ANY" ? nil : method, path: normal, wildcard: wildcard, text: text))
  }

  /// Does the rule allow `method` on `path` (already normalized)?
  func matches(method: String, normalizedPath path: [UInt8]) -> Bool {
    if let own = self.method, own != method { return false }
    guard wildcard else { return path == self.path }
    if path.starts(with: self.path) { return true }
    // "/x/*" also admits "/x" (normalized paths have no trailing slash).
    return self.path.count > 1 && self.path.last == 0x2F && path.count == self.path.count - 1 && self.path.starts(with: path)
  }
}

/// Why a route rule does not parse: the rule as written and what to write instead.
public struct RouteSyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
  public let rule: String
  public let reason: String
  public var description: String { "'\(rule)': \(reason)" }
}

/// Every bad rule of a list.
public struct RouteSyntaxErrors: Error, Sendable, Equatable {
  public let errors: [RouteSyntaxError]
}

/// A set of route rules with the name a refusal gives it (`--allow-route`, or an app's routes
/// in the apps file). A call passes when one rule matches.
public struct RouteSet: Sendable, Equatable {
  public let rules: [RouteRule]
  /// Names the rule set in a 403: "--allow-route", "the routes of app billing in --apps-file".
  public let origin: String

  public init(rules: [RouteRule], origin: String) {
    self.rules = rules
    self.origin = origin
  }

  /// Parses a comma-separated list (`--allow-route`); every bad rule is reported.
  public static func parseList(_ text: String, origin: String) -> Result<RouteSet, RouteSyntaxErrors> {
    let items = text.split(separator: ",").map { $0.trimmingSpaces() }.filter { !$0.isEmpty }
    return parse(items, origin: origin)
  }

  public static func parse(_ items: [String], origin: String) -> Result<RouteSet, RouteSyntaxErrors> {
    var rules: [RouteRule] = []
    var problems: [RouteSyntaxError] = []
    for item in items {
      switch RouteRule.parse(item) {
      case .success(let rule): rules.append(rule)
      case .failure(let problem): problems.append(problem)
      }
    }
    return problems.isEmpty ? .success(RouteSet(rules: rules, origin: origin)) : .failure(RouteSyntaxErrors(errors: problems))
  }

  /// Does a rule allow `method` on `normalizedPath`?
  func allows(method: String, normalizedPath: [UInt8]) -> Bool {
    rules.contains { $0.matches(method: method, normalizedPath: normalizedPath) }
  }

  /// The 403 of a refused call, naming this rule set.
  func refusal(method: String, path: String) -> ProxyError {
    ProxyError(status: 403, code: "route_denied", message: "\(method) \(path) is not allowed by \(origin)")
  }
}
