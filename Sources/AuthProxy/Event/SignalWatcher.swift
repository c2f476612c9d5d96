import CEvent
import Glibc

/// Delivers POSIX signals as callbacks on one loop (the control loop: libevent lets only one
/// base watch signals at a time).
public final class SignalWatcher {
  /// Held so the loop outlives the events registered on it.
  private let loop: EventLoop
  private var events: [OpaquePointer] = []
  private let handler: (Int32) -> Void

  public init(loop: EventLoop, signals: [Int32], handler: @escaping (Int32) -> Void) throws(EventError) {
    self.loop = loop
    self.handler = handler
    for signal in signals {
      // Context: unretained self; the events are freed in deinit.
      guard
        let event = event_new(
          loop.base, signal, Int16(EV_SIGNAL | EV_PERSIST), signalTrampoline,
          Unmanaged.passUnretained(self).toOpaque())
      else { throw EventError("cannot watch signal \(signal)") }
      event_add(event, nil)
      events.append(event)
    }
  }

  deinit {
    for event in events {
      event_del(event)
      event_free(event)
    }
  }

  fileprivate func deliver(_ signal: Int32) { handler(signal) }
}

private func signalTrampoline(_ signal: Int32, _ what: Int16, _ ctx: UnsafeMutableRawPointer?) {
  guard let ctx else { return }
  Unmanaged<SignalWatcher>.fromOpaque(ctx).takeUnretainedValue().deliver(signal)
}
