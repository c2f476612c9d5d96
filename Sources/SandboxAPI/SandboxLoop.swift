import AuthProxy
import Glibc

/// The sandbox's event loop and what is registered on it: the TLS HTTP server, the router and
/// the control mailbox.
final class SandboxLoop: @unchecked Sendable {
  // @unchecked: built on the thread that starts the sandbox, handed to the loop thread before
  // that thread exists (pthread_create orders the two), and from then on touched only there.
  private var loop: EventLoop?
  private var router: SandboxRouter?
  private var server: HTTPServer?
  private var mailbox: MailboxReceiver<SandboxCommand>?
  let control: MailboxSender<SandboxCommand>

  /// Serves TLS on the listening socket `fd`, which it owns from now on (closed on failure).
  init(socket fd: Int32, tls: TLSServerContext, store: SandboxStore) throws {
    let loop: EventLoop
    let router: SandboxRouter
    let server: HTTPServer
    let mailbox: MailboxReceiver<SandboxCommand>
    do {
      loop = try EventLoop()
      router = SandboxRouter(loop: loop, store: store)
      var settings = HTTPServer.Settings()
      settings.timeoutSeconds = 60
      // Above the proxy's --max-body default, so tests of larger limits reach the echo.
      settings.maxBodySize = 64 * 1024 * 1024
      server = try HTTPServer(loop: loop, settings: settings) { [unowned router] request in router.handle(request) }
      server.useTLS(tls)
      mailbox = try MailboxReceiver<SandboxCommand>(loop: loop) { [unowned loop, unowned router] command in
        switch command {
        case .stop: loop.stop()
        case .wakeSleepers: router.wakeSleepers()
        }
      }
      try server.accept(socket: fd)
    } catch {
      close(fd)
      throw error
    }
    self.loop = loop
    self.router = router
    self.server = server
    self.mailbox = mailbox
    control = mailbox.sender
  }

  /// Serves until a `.stop` arrives, then frees everything, on the calling (loop) thread.
  func run() {
    loop?.run()
    router?.shutdown()
    server = nil  // closes the listener and every connection
    router = nil
    mailbox = nil
    loop = nil
  }
}
