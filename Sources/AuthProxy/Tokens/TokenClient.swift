import FoundationEssentials
import Logging

/// The three auth calls of SPEC §1, made from the control loop over its own `CurlMulti`.
final class TokenClient {
  private let multi: CurlMulti
  private let config: ServeConfig
  private let trust: TrustStore?
  private let clock: any WallClock
  private let logger: Logger?
  /// The trace-id of the last auth call started (each carries its own new `traceparent`); only
  /// one login or refresh runs at a time, so the control loop's line about it can name it.
  private(set) var lastTraceID: String?

  /// `trust`: the upstream's CAs as the data path already parsed them (its `sibling()`); nil
  /// has curl load `config.tls.caFile` or the system bundle itself. `clock` dates a token whose
  /// answer gave no expiry, and `logger` warns about it.
  init(multi: CurlMulti, config: ServeConfig, trust: TrustStore? = nil, clock: any WallClock = SystemClock(), logger: Logger? = nil) {
    self.multi = multi
    self.config = config
    self.trust = trust
    self.clock = clock
    self.logger = logger
  }

  private struct LoginBody: Encodable {
    var username: String
    var password: String
  }
  private struct RefreshBody: Encodable { var refresh_token: String }

  func login(_ credentials: Credentials, completion: @escaping (Result<TokenPair, TokenFailure>) -> Void) {
    let body = try? JSONEncoder().encode(LoginBody(username: credentials.username, password: credentials.password.reveal))
    post(config.loginPath, body: body.map { [UInt8]($0) } ?? [], bearer: nil) { [self] outcome in
      completion(pair(from: outcome, isRefresh: false))
    }
  }

  func refresh(_ refreshToken: Secret, completion: @escaping (Result<TokenPair, TokenFailure>) -> Void) {
    let body = try? JSONEncoder().encode(RefreshBody(refresh_token: refreshToken.reveal))
    post(config.refreshPath, body: body.map { [UInt8]($0) } ?? [], bearer: nil) { [self] outcome in
      completion(pair(from: outcome, isRefresh: true))
    }
  }

  func logout(_ accessToken: Secret, completion: @escaping (Result<Void, TokenFailure>) -> Void) {
    post(config.logoutPath, body: [UInt8](), bearer: accessToken) { outcome in
      completion(Self.logoutOutcome(of: outcome))
    }
  }

  /// What a logout's answer means: any 2xx is done (the body is not needed); a 401 says the
  /// token was already refused; the rest as for a login.
  static func logoutOutcome(of answer: Result<Answer, UpstreamFailure>) -> Result<Void, TokenFailure> {
    switch answer {
    case .failure(let failure): return .failure(.unreachable(failure))
    case .success(let answer) where (200..<300).contains(answer.status): return .success(())
    case .success(let answer) where answer.status == 401: return .failure(.tokenRejected)
    case .success(let answer):
      return .failure(.from(status: answer.status, body: answer.body, retryAfter: answer.retryAfter, isRefresh: false))
    }
  }

  /// An auth call's HTTP answer, as far as it matters.
  struct Answer {
    var status: Int
    var body: [UInt8]
    var retryAfter: Double?
  }

  private func pair(from outcome: Result<Answer, UpstreamFailure>, isRefresh: Bool) -> Result<TokenPair, TokenFailure> {
    Self.outcome(of: outcome, isRefresh: isRefresh, now: clock.now()) { [logger] warning in
      logger?.warning("\(warning)", metadata: ["call": isRefresh ? "refresh" : "login"])
    }
  }

  /// What an auth call's answer means (docs/api-contract.md): a 200/201 token answer is a pair,
  /// anything else a `TokenFailure`. A derived expiry is passed to `warn`.
  static func outcome(
    of answer: Result<Answer, UpstreamFailure>, isRefresh: Bool, now: Double, warn: (String) -> Void = { _ in }
  ) -> Result<TokenPair, TokenFailure> {
    switch answer {
    case .failure(let failure): return .failure(.unreachable(failure))
    case .success(let answer) where answer.status == 200 || answer.status == 201:
      guard let token = APIResponse.tokenAnswer(from: answer.body, now: now) else { return .failure(.badResponse) }
      if let warning = token.expirySource.warning { warn(warning) }
      return .success(token.pair)
    case .success(let answer):
      return .failure(.from(status: answer.status, body: answer.body, retryAfter: answer.retryAfter, isRefresh: isRefresh))
    }
  }

  /// Auth answers are small; more than this is not a token answer.
  private static let maxAnswer = 1 << 20

  private func post(_ path: String, body: [UInt8], bearer: Secret?, completion: @escaping (Result<Answer, UpstreamFailure>) -> Void) {
    let trace = TraceContext.started()
    lastTraceID = trace.traceID
    var lines = [
      "Content-Type: application/json", "Accept: application/json", "User-Agent: \(config.userAgent)",
      "X-Request-ID: \(RequestID.generate())", "traceparent: \(trace.traceparent)", "Expect:",
    ]
    if let bearer { lines.append("Authorization: Bearer \(bearer.reveal)") }
    var request = CurlRequest(
      url: config.upstream.origin + config.upstream.basePath + path, method: "POST", headerLines: lines, body: body,
      tls: config.tls, connectTimeoutMs: Int(config.connectTimeout * 1000), stallTimeoutSeconds: Int(config.timeout.rounded(.up)))
    request.trust = trust
    let transfer: CurlTransfer
    do {
      transfer = try CurlTransfer(request)
    } catch {
      completion(.failure(UpstreamFailure(status: 502, code: "internal", message: "cannot start an upstream request")))
      return
    }
    var status = 0
    var retryAfter: Double?
    var received: [UInt8] = []
    transfer.onHead = { [clock] code, headers in
      status = code
      if let value = headers.first(where: { $0.name.lowercased() == "retry-after" })?.value {
        retryAfter = RetryAfter.seconds(value, now: clock.now())
      }
    }
    transfer.onData = { bytes in
      if received.count < Self.maxAnswer { received.append(contentsOf: bytes.prefix(Self.maxAnswer - received.count)) }
    }
    let deadline = Timer(loop: multi.loop) { [weak multi, transfer] in
      transfer.onComplete = nil
      multi?.cancel(transfer)
      completion(.failure(UpstreamFailure.from(curlCode: 28)))
    }
    deadline.schedule(after: config.timeout)
    transfer.onComplete = { result in
      deadline.cancel()
      if result.isSuccess {
        completion(.success(Answer(status: status, body: received, retryAfter: retryAfter)))
      } else {
        completion(.failure(UpstreamFailure.from(curlCode: result.code)))
      }
      _ = transfer
    }
    multi.start(transfer)
  }
}
