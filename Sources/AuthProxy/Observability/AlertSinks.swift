import Logging

/// Why an alert did not reach one of its sinks. Reported through `AlertSinks`' failure
/// callback (for the log and a metric); never thrown into the proxy.
public struct AlertDeliveryFailure: Error, Sendable, Equatable, CustomStringConvertible {
  public enum Sink: String, Sendable { case webhook, command }
  public var sink: Sink
  public var rule: SecurityAlert.Rule
  /// Secret-free: no webhook path or query, no message body.
  public var reason: String

  public init(sink: Sink, rule: SecurityAlert.Rule, reason: String) {
    self.sink = sink
    self.rule = rule
    self.reason = reason
  }

  public var description: String { "alert \(rule.rawValue) not delivered to the \(sink.rawValue): \(reason)" }
}

/// Where alerts go (SPEC §7), the end of the chain after `SecurityMonitor`: always the
/// diagnostic log, plus the webhook and the command when configured. Lives on one loop (the
/// control loop, or the `monitor` command's own); nothing it does blocks that loop.
public final class AlertSinks {
  public let webhook: AlertWebhook?
  public let command: AlertCommand?
  private let logger: Logger
  private let onFailure: (AlertDeliveryFailure) -> Void
  private var ownMulti: CurlMulti?

  /// - Parameters:
  ///   - multi: the loop's `CurlMulti` for the webhook (one is made on `loop` when nil and a
  ///     webhook is configured).
  ///   - onFailure: runs on the loop for each sink that failed (after its retries); the
  ///     failure is logged as a warning too.
  public init(
    webhook: AlertWebhook.Settings?, command: AlertCommand.Settings?, loop: EventLoop, multi: CurlMulti? = nil,
    logger: Logger, onFailure: @escaping (AlertDeliveryFailure) -> Void = { _ in }
  ) throws(EventError) {
    if let webhook {
      let curl: CurlMulti
      if let multi {
        curl = multi
      } else {
        curl = try CurlMulti(loop: loop)
        ownMulti = curl
      }
      self.webhook = AlertWebhook(settings: webhook, multi: curl)
    } else {
      self.webhook = nil
    }
    self.command = command.map { AlertCommand(settings: $0, loop: loop) }
    self.logger = logger
    self.onFailure = onFailure
  }

  /// Sinks still working on earlier alerts.
  public var pending: Int { (webhook?.pending ?? 0) + (command?.pending ?? 0) }

  /// Logs `alert` and hands it to every configured sink. `completion` runs on the loop once
  /// every sink finished (at once, before returning, when only the log is configured), with
  /// the failures, if any.
  public func deliver(_ alert: SecurityAlert, completion: (([AlertDeliveryFailure]) -> Void)? = nil) {
    var metadata: Logger.Metadata = [
      "rule": "\(alert.rule.rawValue)", "count": "\(alert.count)", "threshold": "\(alert.threshold)",
      "window_seconds": "\(Int(alert.windowSeconds.rounded()))", "host": "\(alert.host)",
    ]
    if let ipWhitelist = alert.ipWhitelist { metadata["ip_whitelist"] = "\(ipWhitelist)" }
    logger.error("\(alert.message)", metadata: metadata)

    var waiting = (webhook == nil ? 0 : 1) + (command == nil ? 0 : 1)
    var failures: [AlertDeliveryFailure] = []
    guard waiting > 0 else {
      completion?([])
      return
    }
    let finished: (Result<Void, AlertDeliveryFailure>) -> Void = { [weak self] result in
      if case .failure(let failure) = result {
        failures.append(failure)
        self?.logger.warning("\(failure.description)", metadata: ["rule": "\(failure.rule.rawValue)", "sink": "\(failure.sink.rawValue)"])
        self?.onFailure(failure)
      }
      waiting -= 1
      if waiting == 0 { completion?(failures) }
    }
    webhook?.post(alert, completion: finished)
    command?.run(alert, completion: finished)
  }
}
