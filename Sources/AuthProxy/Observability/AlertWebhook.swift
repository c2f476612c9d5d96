/// The `--alert-webhook` sink: POSTs each alert as JSON (`SecurityAlert.jsonBody`) over
/// verified TLS (or plain http to loopback only), on the caller's `CurlMulti`, so the loop never
/// waits for it. Each attempt has a deadline; failed attempts are retried with doubling backoff.
public final class AlertWebhook {
  public struct Settings: Sendable, Equatable {
    public var url: String
    /// Per attempt, connect included.
    public var timeout: Double = 5
    /// Attempts in all (the first one included).
    public var attempts: Int = 3
    /// Wait before the second attempt; doubled before each further one.
    public var backoff: Double = 1
    /// Trust anchors: the system store unless a CA file is given.
    public var tls = UpstreamTLS()
    public var userAgent = "authproxy/\(AuthProxyVersion.current)"

    public init(url: String, timeout: Double = 5, attempts: Int = 3, backoff: Double = 1) {
      self.url = url
      self.timeout = timeout
      self.attempts = attempts
      self.backoff = backoff
    }
  }

  public let settings: Settings
  private let multi: CurlMulti
  private var deliveries: [ObjectIdentifier: Delivery] = [:]

  public init(settings: Settings, multi: CurlMulti) {
    self.settings = settings
    self.multi = multi
  }

  /// Deliveries not finished yet.
  public var pending: Int { deliveries.count }

  /// Posts `alert`; `completion` runs on the loop once it was accepted (2xx) or every attempt failed.
  public func post(_ alert: SecurityAlert, completion: @escaping (Result<Void, AlertDeliveryFailure>) -> Void) {
    let delivery = Delivery(webhook: self, alert: alert)
    let id = ObjectIdentifier(delivery)
    deliveries[id] = delivery
    delivery.completion = { [unowned self] result in
      self.deliveries[id] = nil
      completion(result)
    }
    delivery.attempt()
  }

  /// A problem naming `--alert-webhook` when `url` is not an https URL or an http URL to a
  /// loopback address; nil when it is fine. The URL itself is not echoed: webhook URLs often
  /// carry a secret (Slack's do).
  public static func validate(_ url: String, flag: String = "--alert-webhook") -> String? {
    let lower = url.lowercased()
    let isHTTPS = lower.hasPrefix("https://")
    guard isHTTPS || lower.hasPrefix("http://") else {
      return "\(flag): must be an https:// URL (or http:// to 127.0.0.1, [::1] or localhost)"
    }
    guard !url.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value >= 0x7F }) else {
      return "\(flag): must not contain spaces or control characters"
    }
    let rest = url.dropFirst(isHTTPS ? 8 : 7)
    let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
    let hostPort = authority.split(separator: "@", omittingEmptySubsequences: false).last ?? ""
    let host: Substring
    if hostPort.hasPrefix("[") {
      guard let close = hostPort.firstIndex(of: "]") else { return "\(flag): has an unterminated [IPv6] host" }
      host = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
    } else {
      host = hostPort.prefix { $0 != ":" }
    }
    guard !host.isEmpty else { return "\(flag): has no host" }
    if !isHTTPS && (authority.contains("@") || !VaultAddress.isLoopback(String(host))) {
      return
        "\(flag): plain http is allowed only to 127.0.0.1, [::1] or localhost (alerts would cross the network in clear); use https://"
    }
    return nil
  }

  /// Scheme and host of `url`, for logs (the path and query may hold a secret).
  public static func redacted(_ url: String) -> String {
    guard let scheme = url.firstRange(of: "://") else { return "<webhook>" }
    let authority = url[scheme.upperBound...].prefix { $0 != "/" && $0 != "?" && $0 != "#" }
    let host = authority.split(separator: "@", omittingEmptySubsequences: false).last ?? ""
    return String(url[..<scheme.upperBound]) + host + "/…"
  }

  fileprivate func request(body: [UInt8]) -> CurlRequest {
    var request = CurlRequest(
      url: settings.url, method: "POST",
      headerLines: ["Content-Type: application/json", "User-Agent: \(settings.userAgent)", "Expect:"], body: body,
      tls: settings.tls, connectTimeoutMs: Int(settings.timeout * 1000), stallTimeoutSeconds: Int(settings.timeout.rounded(.up)))
    request.allowPlainHTTP = !settings.url.lowercased().hasPrefix("https://")
    request.freshConnection = true
    return request
  }

  fileprivate var curl: CurlMulti { multi }
}

/// One alert's way to the webhook: its attempts, their deadline and the backoff between them.
private final class Delivery {
  unowned let webhook: AlertWebhook
  let alert: SecurityAlert
  let body: [UInt8]
  var completion: ((Result<Void, AlertDeliveryFailure>) -> Void)?
  private var attempts = 0
  private var transfer: CurlTransfer?
  private var deadline: Timer?
  private var retryTimer: Timer?

  init(webhook: AlertWebhook, alert: SecurityAlert) {
    self.webhook = webhook
    self.alert = alert
    body = Array(alert.jsonBody().utf8)
  }

  func attempt() {
    attempts += 1
    let transfer: CurlTransfer
    do {
      transfer = try CurlTransfer(webhook.request(body: body))
    } catch {
      finish(.failure(failure("cannot start the request (\(error.description))")))
      return
    }
    self.transfer = transfer
    var status = 0
    transfer.onHead = { code, _ in status = code }
    transfer.onComplete = { [weak self] result in
      guard let self else { return }
      self.deadline?.cancel()
      self.transfer = nil
      if result.isSuccess && (200..<300).contains(status) {
        self.finish(.success(()))
      } else if result.isSuccess {
        self.failed("HTTP \(status)", retryable: status >= 500 || status == 408 || status == 429)
      } else {
        self.failed(result.curlMessage, retryable: true)
      }
    }
    let multi = webhook.curl
    if deadline == nil {
      deadline = Timer(loop: multi.loop) { [weak self] in
        guard let self, let transfer = self.transfer else { return }
        transfer.onComplete = nil
        multi.cancel(transfer)
        self.transfer = nil
        self.failed("no answer within \(SecurityAlert.formatDuration(self.webhook.settings.timeout))", retryable: true)
      }
    }
    deadline?.schedule(after: webhook.settings.timeout)
    multi.start(transfer)
  }

  private func failed(_ why: String, retryable: Bool) {
    guard retryable, attempts < webhook.settings.attempts else {
      let tries = attempts == 1 ? "1 attempt" : "\(attempts) attempts"
      finish(.failure(failure("\(why) (\(tries))")))
      return
    }
    if retryTimer == nil { retryTimer = Timer(loop: webhook.curl.loop) { [weak self] in self?.attempt() } }
    let delay = webhook.settings.backoff * Double(1 << min(attempts - 1, 10))
    retryTimer?.schedule(after: delay)
  }

  private func failure(_ reason: String) -> AlertDeliveryFailure {
    AlertDeliveryFailure(sink: .webhook, rule: alert.rule, reason: "\(AlertWebhook.redacted(webhook.settings.url)): \(reason)")
  }

  private func finish(_ result: Result<Void, AlertDeliveryFailure>) {
    deadline?.cancel()
    retryTimer?.cancel()
    let completion = self.completion
    self.completion = nil
    completion?(result)
  }
}
