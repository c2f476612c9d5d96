import Foundation
import Logging

/// Keeps every diagnostic line a test's code logged, for assertions and the secret scan.
public final class LogCapture: @unchecked Sendable {
  // @unchecked: every access to `lines` holds `lock`.
  private let lock = NSLock()
  private var lines: [(level: Logger.Level, text: String)] = []

  public init() {}

  /// Each line as "<level> <message> <metadata>".
  public var all: [String] { lock.withLock { lines.map { "\($0.level) \($0.text)" } } }
  /// Each line with its level apart, as "<message> <metadata>".
  public var entries: [(level: Logger.Level, text: String)] { lock.withLock { lines } }

  public var logger: Logger {
    Logger(label: "authproxy-test") { _ in CapturingHandler(capture: self) }
  }

  fileprivate func append(_ level: Logger.Level, _ text: String) { lock.withLock { lines.append((level, text)) } }

  struct CapturingHandler: LogHandler {
    let capture: LogCapture
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
      get { metadata[key] }
      set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
      let merged = metadata.merging(event.metadata ?? [:]) { $1 }
      capture.append(event.level, "\(event.message) \(merged)")
    }
  }
}
