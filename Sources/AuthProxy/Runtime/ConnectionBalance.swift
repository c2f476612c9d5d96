import Synchronization

/// Shares client connections among the workers by how many each holds, as HAProxy does among
/// its threads. Every worker accepts from the one listening socket, and the kernel wakes them
/// all; the one that was idle most recently wins nearly every race, so a burst of connections
/// opened at once (an app's pool starting, a load test) went whole to one worker while the
/// other core idled. Now the worker that accepted keeps a connection only if no other worker
/// holds fewer; otherwise it hands the descriptor to the one that holds fewest, through that
/// worker's mailbox.
final class ConnectionBalance: Sendable {
  private struct State {
    var open: [Int]
    /// nil: not started yet, or draining: takes no connections from others.
    var mailboxes: [MailboxSender<WorkerMessage>?]
  }

  private let state: Mutex<State>

  init(workers: Int) {
    state = Mutex(State(open: Array(repeating: 0, count: workers), mailboxes: Array(repeating: nil, count: workers)))
  }

  /// Worker `id` is running and may be handed connections.
  func register(_ id: Int, mailbox: MailboxSender<WorkerMessage>) {
    state.withLock { $0.mailboxes[id] = mailbox }
  }

  /// Worker `id` drains: no more connections for it from the others.
  func withdraw(_ id: Int) {
    state.withLock { $0.mailboxes[id] = nil }
  }

  /// Worker `id` accepted a connection: where it goes, already counted there. nil: `id` keeps it.
  func place(acceptedBy id: Int) -> (worker: Int, mailbox: MailboxSender<WorkerMessage>)? {
    state.withLock { state in
      var target = id
      for (other, mailbox) in state.mailboxes.enumerated() where mailbox != nil && state.open[other] < state.open[target] {
        target = other
      }
      state.open[target] += 1
      guard target != id, let mailbox = state.mailboxes[target] else { return nil }
      return (target, mailbox)
    }
  }

  /// A connection worker `id` held has closed (or one handed to it could not be taken).
  func closed(_ id: Int) {
    state.withLock { $0.open[id] = max(0, $0.open[id] - 1) }
  }

  /// Connections each worker holds now.
  var open: [Int] { state.withLock { $0.open } }
}
