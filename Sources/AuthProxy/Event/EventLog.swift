import CEvent
import Logging
import Synchronization

/// libevent's own messages (`[warn] Error from accept() call: …`), which it writes to stderr
/// outside the configured log format, go to the diagnostic log instead, at most
/// `allowance` a minute; the rest are counted and the count said with the next one let through.
public enum EventLog {
  private struct State: Sendable {
    var logger: Logger?
    var clock: any WallClock = SystemClock()
    var windowStart = -Double.infinity
    var inWindow = 0
    var suppressed = 0
  }
  private static let state = Mutex(State())
  /// Messages let through per minute.
  static let allowance = 10

  /// Routes libevent's messages to `logger` from now on (process-wide; the last call wins).
  public static func install(logger: Logger, clock: any WallClock = SystemClock()) {
    state.withLock { state in
      state.logger = logger
      state.clock = clock
    }
    event_set_log_callback(eventLogTrampoline)
  }

  fileprivate static func received(severity: Int32, message: String) {
    let decision: (logger: Logger, suppressed: Int)? = state.withLock { state in
      guard let logger = state.logger else { return nil }
      let now = state.clock.now()
      if now - state.windowStart >= 60 {
        state.windowStart = now
        state.inWindow = 0
      }
      guard state.inWindow < allowance else {
        state.suppressed += 1
        return nil
      }
      state.inWindow += 1
      defer { state.suppressed = 0 }
      return (logger, state.suppressed)
    }
    guard let (logger, suppressed) = decision else { return }
    let text = "libevent: \(message)" + (suppressed > 0 ? " (\(suppressed) more libevent messages were not shown)" : "")
    switch severity {
    case Int32(EVENT_LOG_DEBUG): logger.debug("\(text)")
    case Int32(EVENT_LOG_MSG): logger.info("\(text)")
    case Int32(EVENT_LOG_WARN): logger.warning("\(text)")
    default: logger.error("\(text)")
    }
  }
}

/// `event_set_log_callback`: called on whichever thread libevent complains on; the message is
/// libevent's, valid for the call only (copied here).
private func eventLogTrampoline(_ severity: Int32, _ message: UnsafePointer<CChar>?) {
  EventLog.received(severity: severity, message: message.map { String(cString: $0) } ?? "")
}
