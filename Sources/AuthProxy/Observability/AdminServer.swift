/// The admin listener (SPEC §5): health and readiness. Never proxies. Runs on the control loop.
final class AdminServer {
  private var server: HTTPServer?
  private let readiness: () -> (ready: Bool, reason: String)
  private let metrics: () -> String

  init(
    loop: EventLoop, socket: Int32, readiness: @escaping () -> (ready: Bool, reason: String), metrics: @escaping () -> String
  ) throws(EventError) {
    self.readiness = readiness
    self.metrics = metrics
    var settings = HTTPServer.Settings()
    settings.maxBodySize = 0
    settings.timeoutSeconds = 10
    server = try HTTPServer(loop: loop, settings: settings) { [weak self] request in self?.handle(request) }
    // Bound until the process exits (it answers through the drain): safe to pause on EMFILE.
    try server?.accept(socket: socket, pauseOnExhaustion: true)
  }

  /// The proxy is draining: answers say `Connection: close`, so that a prober's kept-alive
  /// connection does not outlive the process.
  var draining = false

  private func handle(_ request: ServerRequest) {
    let closing: [(String, String)] = draining ? [("Connection", "close")] : []
    let json = [("Content-Type", "application/json")] + closing
    switch AccessLogEntry.path(of: request.target) {
    case "/healthz":
      request.respond(status: 200, headers: json, body: Array(#"{"status":"ok"}"#.utf8))
    case "/readyz":
      let (ready, reason) = readiness()
      let body = JSONText.object([("ready", ready ? "true" : "false"), ("reason", JSONText.quoted(reason))])
      request.respond(status: ready ? 200 : 503, headers: json, body: Array(body.utf8))
    case "/metrics":
      request.respond(status: 200, headers: [("Content-Type", "text/plain; version=0.0.4")] + closing, body: Array(metrics().utf8))
    default:
      request.respond(
        status: 404, headers: json,
        body: Array(#"{"error":{"code":"not_found","message":"admin endpoints: /healthz, /readyz, /metrics"}}"#.utf8))
    }
  }
}
