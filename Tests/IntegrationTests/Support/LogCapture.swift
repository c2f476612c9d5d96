import Foundation
import Logging

/// Keeps every diagnostic line a test's proxy logged, for assertions and the secret scan.
final class LogCapture: @unchecked Sendable {
  private let lock = NSLock()
  private var lines: [String] = []

  var all: [String] { lock.withLock { lines } }
  func append(_ line: String) { lock.withLock { lines.append(line) } }

  var logger: Logger {
    Logger(label: "authproxy-test") { _ in CapturingHandler(capture: self) }
  }

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
      capture.append("\(event.level) \(event.message) \(merged)")
    }
  }
}
