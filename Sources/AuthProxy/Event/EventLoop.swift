import CEvent
import Glibc

/// Errors of the libevent wrappers: a C call that returned failure, named.
public struct EventError: Error, CustomStringConvertible, Sendable {
  public let description: String
  /// The `errno` behind it, when a system call failed (0 otherwise).
  public let code: Int32
  init(_ what: String, code: Int32 = 0) {
    description = what
    self.code = code
  }
}

/// One libevent `event_base`, owned by exactly one thread.
///
/// Not `Sendable` on purpose: the loop, and everything registered on it, is touched only by
/// the thread that runs it. Other threads reach it through a `MailboxSender`.
public final class EventLoop {
  let base: OpaquePointer

  public init() throws(EventError) {
    guard let config = event_config_new() else { throw EventError("event_config_new failed") }
    defer { event_config_free(config) }
    // One thread per base: no locks inside libevent. The changelist folds the
    // del/add pairs evhttp makes around every reply into one epoll_ctl.
    event_config_set_flag(
      config, Int32(EVENT_BASE_FLAG_NOLOCK.rawValue | EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST.rawValue))
    guard let base = event_base_new_with_config(config) else {
      throw EventError("event_base_new_with_config failed")
    }
    self.base = base
  }

  deinit { event_base_free(base) }

  /// Runs callbacks until `stop()` is called from one of them.
  public func run() {
    _ = event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY)
  }

  /// Makes `run()` return after the current callback.
  public func stop() {
    _ = event_base_loopbreak(base)
  }

  /// One-shot delayed actions, each with its timer, until they run.
  private var delayed: [Int: Timer] = [:]
  private var nextDelayed = 0

  /// Runs `action` once, `seconds` from now (not cancellable: for retries and polls).
  public func after(_ seconds: Double, _ action: @escaping () -> Void) {
    nextDelayed += 1
    let id = nextDelayed
    let timer = Timer(loop: self) { [unowned self] in
      let timer = self.delayed.removeValue(forKey: id)
      withExtendedLifetime(timer) { action() }
    }
    delayed[id] = timer
    timer.schedule(after: seconds)
  }

  /// Actions waiting for the next pass of the loop, and the timer that runs them.
  private var deferred: [() -> Void] = []
  private var deferredTimer: Timer?

  /// Runs `action` on a later pass of the loop, outside whatever callback is running now.
  public func soon(_ action: @escaping () -> Void) {
    deferred.append(action)
    guard deferred.count == 1 else { return }
    if deferredTimer == nil {
      deferredTimer = Timer(loop: self) { [unowned self] in
        let batch = self.deferred
        self.deferred.removeAll()
        for action in batch { action() }
      }
    }
    deferredTimer?.schedule(after: 0)
  }
}

extension String {
  /// Text from a NUL-terminated C buffer filled by a shim.
  init(cBuffer: [CChar]) {
    let bytes = cBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    self = String(decoding: bytes, as: UTF8.self)
  }
}
