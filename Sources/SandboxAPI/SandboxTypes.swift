/// An account of the sandbox API: a username and password, and the client (integration) they
/// log in as. Several users may share one client, as a rotated password does. Client ids are
/// numbers, as the API's docs give them (`"client_id": 123456`).
public struct SandboxUser: Sendable, Equatable {
  public var username: String
  public var password: String
  public var clientID: Int

  public init(username: String, password: String, clientID: Int) {
    self.username = username
    self.password = password
    self.clientID = clientID
  }
}

/// What the sandbox has served so far, for assertions.
public struct SandboxCounters: Sendable, Equatable {
  /// Successful and failed `POST /auth/login` calls (a failure is any answer but 200).
  public var logins = 0
  public var failedLogins = 0
  /// Successful and failed `POST /auth/refresh` calls.
  public var refreshes = 0
  public var failedRefreshes = 0
  /// Successful `POST /auth/logout` calls.
  public var logouts = 0
  /// `/api/v1` requests with a valid access token, and those refused with 401.
  public var apiRequests = 0
  public var unauthorizedAPIRequests = 0
  /// Orders created by `POST /api/v1/orders` (not idempotent: each call is one more).
  public var orders = 0

  public init(
    logins: Int = 0, failedLogins: Int = 0, refreshes: Int = 0, failedRefreshes: Int = 0, logouts: Int = 0,
    apiRequests: Int = 0, unauthorizedAPIRequests: Int = 0, orders: Int = 0
  ) {
    self.logins = logins
    self.failedLogins = failedLogins
    self.refreshes = refreshes
    self.failedRefreshes = failedRefreshes
    self.logouts = logouts
    self.apiRequests = apiRequests
    self.unauthorizedAPIRequests = unauthorizedAPIRequests
    self.orders = orders
  }
}

/// How `POST /auth/login` fails while `SandboxAPI.failLogins(_:)` is in force.
public enum SandboxLoginFailure: Sendable, Equatable {
  /// 401 `UNAUTHORIZED` "Invalid credentials", whatever the credentials (as after a password change).
  case invalidCredentials
  /// 403 `FORBIDDEN`, "IP address not authorized" (the egress IP is not whitelisted).
  case ipNotWhitelisted
  /// 429 "Too many login attempts" (the docs' flat shape) with `Retry-After: retryAfterSeconds`.
  case rateLimited(retryAfterSeconds: Int)
  /// 500 `INTERNAL_ERROR`.
  case serverError
}

/// One `/api/v1` request exactly as the sandbox received it.
public struct SandboxRecordedRequest: Sendable {
  public var method: String
  /// The request target as sent: path and query.
  public var target: String
  /// Headers in the order received, names as spelled by the sender.
  public var headers: [(name: String, value: String)]
  public var body: [UInt8]

  public init(method: String, target: String, headers: [(name: String, value: String)], body: [UInt8]) {
    self.method = method
    self.target = target
    self.headers = headers
    self.body = body
  }

  /// The first value of header `name` (case-insensitive), if any.
  public func header(_ name: String) -> String? {
    let wanted = name.lowercased()
    return headers.first { $0.name.lowercased() == wanted }?.value
  }

  /// Every value of header `name` (case-insensitive), in order.
  public func headerValues(_ name: String) -> [String] {
    let wanted = name.lowercased()
    return headers.filter { $0.name.lowercased() == wanted }.map(\.value)
  }
}

/// How token answers carry `client_id`: a number as the docs give it (the default), or the
/// other shapes authproxy must also accept (SPEC §1), to test that it does.
public enum SandboxClientIDForm: Sendable, Equatable {
  case number
  case string
  case absent
}

/// Commands to the sandbox's loop thread.
enum SandboxCommand: Sendable {
  case stop
  /// Answer every `/api/v1/slow` request now.
  case wakeSleepers
}
