/// An error answer of the sandbox API: status, the `{"error":{"name","code","message"}}` fields,
/// and the flat name of the older docs (`{"error":"unauthorized","message":…}`).
struct SandboxFailure: Error, Sendable, Equatable {
  var status: Int
  var name: String
  var code: String
  var message: String
  /// `Retry-After`, in seconds, when the answer carries one.
  var retryAfter: Int?

  /// The `error` string of the flat form (the docs' older page): `validation_error`,
  /// `unauthorized`, and for 429 "Too Many Requests", the only shape the docs give a 429.
  var flatName: String {
    switch status {
    case 400: "validation_error"
    case 401: "unauthorized"
    case 403: "forbidden"
    case 404: "not_found"
    case 405: "method_not_allowed"
    case 429: "Too Many Requests"
    default: "server_error"
    }
  }

  /// 400 for a body that is not JSON, as the login and refresh pages give it.
  static let syntaxError = SandboxFailure(status: 400, name: "SyntaxError", code: "SYNTAX_ERROR", message: "Invalid request body")

  /// 400 for missing or invalid fields ("Username and password are required", …).
  static func validationFailure(_ message: String) -> SandboxFailure {
    SandboxFailure(status: 400, name: "ValidationException", code: "VALIDATION_FAILURE", message: message)
  }

  /// A bad request to a business endpoint: the docs' code for invalid fields.
  static func badRequest(_ message: String) -> SandboxFailure { validationFailure(message) }

  static let invalidCredentials = unauthorized("Invalid credentials")

  /// A refresh token that is unknown, expired or already rotated or revoked.
  static let invalidRefreshToken = unauthorized("Invalid refresh token")

  /// Every 401 has the one documented code; only the message differs.
  static func unauthorized(_ message: String) -> SandboxFailure {
    SandboxFailure(status: 401, name: "UnauthorizedError", code: "UNAUTHORIZED", message: message)
  }

  static let ipNotWhitelisted = SandboxFailure(
    status: 403, name: "ForbiddenError", code: "FORBIDDEN", message: "IP address not authorized")

  /// The docs show a 429 only in the flat shape, with this message.
  static func rateLimited(retryAfter seconds: Int) -> SandboxFailure {
    SandboxFailure(
      status: 429, name: "TooManyRequests", code: "TOO_MANY_REQUESTS",
      message: "Too many login attempts. Please try again later.", retryAfter: seconds)
  }

  static let serverError = SandboxFailure(
    status: 500, name: "InternalServerError", code: "INTERNAL_ERROR", message: "Internal server error")

  static func notFound(_ path: String) -> SandboxFailure {
    SandboxFailure(status: 404, name: "NotFound", code: "NOT_FOUND", message: "No route for \(path)")
  }

  static func methodNotAllowed(_ method: String, _ path: String) -> SandboxFailure {
    SandboxFailure(status: 405, name: "MethodNotAllowed", code: "METHOD_NOT_ALLOWED", message: "\(method) is not allowed on \(path)")
  }

  init(status: Int, name: String, code: String, message: String, retryAfter: Int? = nil) {
    self.status = status
    self.name = name
    self.code = code
    self.message = message
    self.retryAfter = retryAfter
  }

  init(_ failure: SandboxLoginFailure) {
    switch failure {
    case .invalidCredentials: self = .invalidCredentials
    case .ipNotWhitelisted: self = .ipNotWhitelisted
    case .rateLimited(let seconds): self = .rateLimited(retryAfter: seconds)
    case .serverError: self = .serverError
    }
  }

  /// The answer's headers and JSON body, in the nested or the flat form (a 429 is always flat:
  /// it is the only shape the docs show for it).
  func reply(flat: Bool) -> (headers: [(name: String, value: String)], body: [UInt8]) {
    let flat = flat || status == 429
    var headers = [SandboxJSON.contentType]
    if let retryAfter { headers.append(("Retry-After", String(retryAfter))) }
    if status == 401 { headers.append(("WWW-Authenticate", "Bearer realm=\"api\", error=\"invalid_token\"")) }
    let body =
      flat
      ? SandboxJSON.encode(FlatError(error: flatName, message: message))
      : SandboxJSON.encode(NestedError(error: .init(name: name, code: code, message: message)))
    return (headers, body)
  }

  private struct NestedError: Encodable {
    struct Detail: Encodable {
      let name: String
      let code: String
      let message: String
    }
    let error: Detail
  }

  private struct FlatError: Encodable {
    let error: String
    let message: String
  }
}
