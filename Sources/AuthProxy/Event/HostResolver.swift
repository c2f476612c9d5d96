/// Looks a host name up off the loop. getaddrinfo blocks for as long as the resolver takes (with
/// an unreachable name server, glibc's 5 s per try and server): run on a worker's loop, it would
/// stall every connection of that worker. Each lookup runs on a short-lived thread of its own, as
/// libcurl's threaded resolver does, and the answer comes back on the loop through a mailbox.
/// One lookup at a time: asking again while one is under way does nothing.
public final class HostResolver {
  public typealias Lookup = @Sendable (_ host: String, _ port: Int) -> [SocketAddress]

  private let host: String
  private let port: Int
  private let lookup: Lookup
  private var mailbox: MailboxReceiver<[SocketAddress]>?
  public private(set) var isResolving = false

  /// `onAnswer` gets every lookup's addresses (empty when the name did not resolve), on `loop`.
  public init(
    loop: EventLoop, host: String, port: Int, lookup: @escaping Lookup = SocketAddress.resolve,
    onAnswer: @escaping ([SocketAddress]) -> Void
  ) throws(EventError) {
    self.host = host
    self.port = port
    self.lookup = lookup
    mailbox = try MailboxReceiver(loop: loop) { [unowned self] addresses in
      self.isResolving = false
      onAnswer(addresses)
    }
  }

  /// Starts a lookup unless one is under way.
  public func resolve() {
    guard !isResolving, let sender = mailbox?.sender else { return }
    isResolving = true
    let (host, port, lookup) = (self.host, self.port, self.lookup)
    // The thread holds only the sender: if the resolver is gone when the answer comes, the
    // answer goes nowhere.
    LoopThread(name: "ap-resolve") { sender.send(lookup(host, port)) }.detach()
  }
}
