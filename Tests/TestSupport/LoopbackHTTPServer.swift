import AuthProxy
import Synchronization

/// A fake HTTP(S) server on 127.0.0.1 with its own loop thread, built with the project's
/// `HTTPServer`: the other end of the control plane's curl calls (Vault, alert webhooks) in
/// tests. `answer` runs on the server's thread for each request; nil holds the request
/// unanswered (a server that hangs) until `stop()`. Every request is kept for assertions.
public final class LoopbackHTTPServer: @unchecked Sendable {
  // @unchecked: the loop objects are built here, handed to the loop thread before it starts
  // (pthread_create orders the two), and from then on touched only there; `seen` is a Mutex.

  /// One request as received.
  public struct Request: Sendable {
    public var method: String
    public var target: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    /// The first header of this name (case-insensitive).
    public func header(_ name: String) -> String? {
      headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
    public var bodyText: String { String(decoding: body, as: UTF8.self) }
  }

  /// What to answer.
  public struct Answer: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    public init(status: Int, headers: [(name: String, value: String)] = [], body: String = "") {
      self.status = status
      self.headers = headers
      self.body = Array(body.utf8)
    }
  }

  private var loop: EventLoop?
  private var server: HTTPServer?
  private var mailbox: MailboxReceiver<Bool>?
  private var thread: LoopThread?
  private var held: [ServerRequest] = []
  private let stopper: MailboxSender<Bool>
  private let seen = Mutex<[Request]>([])
  public let port: Int

  /// Every request received so far, oldest first.
  public var requests: [Request] { seen.withLock { $0 } }

  public init(tls: TLSServerContext? = nil, name: String = "fake-http", answer: @escaping @Sendable (Request) -> Answer?) throws {
    let (fd, port) = try ListeningSocket.bind(host: "127.0.0.1", port: 0, reusePort: false)
    self.port = port
    let loop = try EventLoop()
    let mailbox = try MailboxReceiver<Bool>(loop: loop) { [unowned loop] _ in loop.stop() }
    stopper = mailbox.sender
    self.loop = loop
    self.mailbox = mailbox
    let server = try HTTPServer(loop: loop) { [unowned self] request in self.handle(request, answer) }
    if let tls { server.useTLS(tls) }
    try server.accept(socket: fd)
    self.server = server
    thread = LoopThread(name: name) { [self] in self.run() }
  }

  private func handle(_ request: ServerRequest, _ answer: (Request) -> Answer?) {
    let received = Request(method: request.method, target: request.target, headers: request.headers, body: request.body)
    seen.withLock { $0.append(received) }
    guard let reply = answer(received) else {
      held.append(request)
      return
    }
    request.respond(status: reply.status, headers: reply.headers, body: reply.body)
  }

  /// Serves until `stop()`, then frees the loop's objects on the loop thread.
  private func run() {
    loop?.run()
    held.removeAll()
    server = nil
    mailbox = nil
    loop = nil
  }

  /// `http://127.0.0.1:<port><path>`.
  public func url(_ path: String = "") -> String { "http://127.0.0.1:\(port)\(path)" }

  public func stop() {
    stopper.send(true)
    thread?.join()
    thread = nil
  }

  deinit { if thread != nil { stop() } }
}
