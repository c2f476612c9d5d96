import CEvent
import CShims
import Glibc
import Synchronization

/// The sending side of a mailbox: any thread may post messages to the loop that owns the
/// receiver. The only cross-thread hand-off in the process.
public final class MailboxSender<Message: Sendable>: Sendable {
  fileprivate let fd: Int32
  fileprivate let queue = Mutex<[Message]>([])

  fileprivate init() throws(EventError) {
    let fd = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
    guard fd >= 0 else { throw EventError("eventfd failed: errno \(errno)") }
    self.fd = fd
  }

  deinit { close(fd) }

  public func send(_ message: Message) {
    let wasEmpty = queue.withLock { queue in
      queue.append(message)
      return queue.count == 1
    }
    // One wake-up per batch: the receiver drains the whole queue.
    if wasEmpty {
      var one: UInt64 = 1
      _ = write(fd, &one, 8)
    }
  }
}

/// The receiving side: delivers messages, in order, on its loop's thread.
public final class MailboxReceiver<Message: Sendable> {
  /// Held so the loop outlives the events registered on it.
  private let loop: EventLoop
  public let sender: MailboxSender<Message>
  private var event: OpaquePointer?
  private let handler: (Message) -> Void

  public init(loop: EventLoop, handler: @escaping (Message) -> Void) throws(EventError) {
    self.loop = loop
    sender = try MailboxSender<Message>()
    self.handler = handler
    // Context: unretained self; the event is freed in deinit.
    event = event_new(
      loop.base, sender.fd, Int16(EV_READ | EV_PERSIST), mailboxTrampoline,
      Unmanaged.passUnretained(self).toOpaque())
    guard let event else { throw EventError("event_new failed for a mailbox") }
    event_add(event, nil)
  }

  deinit {
    if let event {
      event_del(event)
      event_free(event)
    }
  }

  fileprivate func drain() {
    var counter: UInt64 = 0
    _ = read(sender.fd, &counter, 8)
    let batch = sender.queue.withLock { queue in
      let batch = queue
      queue.removeAll(keepingCapacity: true)
      return batch
    }
    for message in batch { handler(message) }
  }
}

private func mailboxTrampoline(_ fd: Int32, _ what: Int16, _ ctx: UnsafeMutableRawPointer?) {
  guard let ctx else { return }
  let receiver = Unmanaged<AnyObject>.fromOpaque(ctx).takeUnretainedValue()
  (receiver as? MailboxDraining)?.drainMailbox()
}

/// Lets the C trampoline drain a receiver without knowing its message type.
protocol MailboxDraining: AnyObject { func drainMailbox() }
extension MailboxReceiver: MailboxDraining {
  func drainMailbox() { drain() }
}
