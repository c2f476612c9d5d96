import CEvent
import Glibc

/// A one-shot timer on an `EventLoop`; schedule again to fire again.
public final class Timer {
  /// Held so the loop outlives the events registered on it.
  private let loop: EventLoop
  private var event: OpaquePointer?
  private var action: () -> Void

  public init(loop: EventLoop, action: @escaping () -> Void) {
    self.loop = loop
    self.action = action
    // Context: unretained self. The event is freed in deinit, so it never outlives self.
    event = event_new(loop.base, -1, 0, timerTrampoline, Unmanaged.passUnretained(self).toOpaque())
  }

  deinit {
    if let event {
      event_del(event)
      event_free(event)
    }
  }

  /// (Re)arms the timer; 0 fires on the next pass of the loop.
  public func schedule(after seconds: Double) {
    guard let event else { return }
    let clamped = max(0, seconds)
    var tv = timeval(tv_sec: Int(clamped), tv_usec: Int((clamped - clamped.rounded(.down)) * 1_000_000))
    event_add(event, &tv)
  }

  public func cancel() {
    if let event { event_del(event) }
  }

  public var isPending: Bool {
    guard let event else { return false }
    return event_pending(event, Int16(EV_TIMEOUT), nil) != 0
  }

  fileprivate func fire() {
    let action = self.action
    action()
  }
}

private func timerTrampoline(_ fd: Int32, _ what: Int16, _ ctx: UnsafeMutableRawPointer?) {
  guard let ctx else { return }
  let timer = Unmanaged<Timer>.fromOpaque(ctx).takeUnretainedValue()
  // Keep the timer alive for the duration of its own action (the action may drop the last reference).
  withExtendedLifetime(timer) { timer.fire() }
}
