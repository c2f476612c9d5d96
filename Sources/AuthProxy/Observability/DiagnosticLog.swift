import Glibc
import Logging

/// `--log-format`: how diagnostic lines look on stderr.
public enum LogFormat: String, Sendable, CaseIterable {
  case text
  case json
}

/// The diagnostic log as JSON lines on stderr: `ts`, `level`, `message` and the metadata.
/// Secrets never get here: they are `Secret` values, which print as `<redacted>`.
public struct JSONLogHandler: LogHandler {
  public var metadata: Logger.Metadata = [:]
  public var logLevel: Logger.Level
  private let label: String

  public init(label: String, level: Logger.Level) {
    self.label = label
    logLevel = level
  }

  public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { metadata[key] }
    set { metadata[key] = newValue }
  }

  public func log(event: LogEvent) {
    var members: [(String, String)] = [
      ("ts", JSONText.quoted(RFC3339.format(SystemClock().now()))), ("level", JSONText.quoted(event.level.rawValue)),
      ("logger", JSONText.quoted(label)), ("message", JSONText.quoted("\(event.message)")),
    ]
    let merged = metadata.merging(event.metadata ?? [:]) { $1 }
    for key in merged.keys.sorted() where !["ts", "level", "logger", "message"].contains(key) {
      members.append((key, JSONText.quoted("\(merged[key]!)")))
    }
    let line = Array((JSONText.object(members) + "\n").utf8)
    line.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
  }
}

/// Builds the process's diagnostic logger (once, at start-up).
public enum DiagnosticLog {
  public static func bootstrap(level: Logger.Level, format: LogFormat) -> Logger {
    LoggingSystem.bootstrap { label in
      switch format {
      case .json: return JSONLogHandler(label: label, level: level)
      case .text:
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
      }
    }
    return Logger(label: "authproxy")
  }
}
