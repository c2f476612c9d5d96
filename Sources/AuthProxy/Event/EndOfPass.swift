import CEvent
import Glibc

/// Work an object wants done once the current loop pass has run its callbacks.
public protocol EndOfPassTask: AnyObject {
  func runAtEndOfPass()
}

/// Runs tasks once the callbacks of the current loop pass are done, without a system call:
/// a worker queues its clients' output during a pass and writes each connection once.
public final class EndOfPass {
  private var event: OpaquePointer?
  /// Held strongly until run (no closure per schedule: this runs for every reply).
  private var pending: [any EndOfPassTask] = []

  public init(loop: EventLoop) {
    // Context: unretained self; the event is freed in deinit.
    event = event_new(loop.base, -1, 0, endOfPassTrampoline, Unmanaged.passUnretained(self).toOpaque())
  }

  deinit {
    if let event {
      event_del(event)
      event_free(event)
    }
  }

  public func schedule(_ task: any EndOfPassTask) {
    pending.append(task)
    if pending.count == 1, let event { event_active(event, 0, 0) }
  }

  fileprivate func run() {
    var batch: [any EndOfPassTask] = []
    while !pending.isEmpty {
      swap(&batch, &pending)
      for task in batch { task.runAtEndOfPass() }
      batch.removeAll(keepingCapacity: true)
    }
  }
}

private func endOfPassTrampoline(_ fd: Int32, _ what: Int16, _ ctx: UnsafeMutableRawPointer?) {
  guard let ctx else { return }
  Unmanaged<EndOfPass>.fromOpaque(ctx).takeUnretainedValue().run()
}
