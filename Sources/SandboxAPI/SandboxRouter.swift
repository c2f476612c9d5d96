import AuthProxy
import FoundationEssentials
import Glibc

/// Answers the sandbox API's requests. Lives on the sandbox's loop thread only.
final class SandboxRouter {
  private let loop: EventLoop
  private let store: SandboxStore
  /// Replies in progress: `/api/v1/slow` waits and `/api/v1/bytes` streams, by a serial key.
  private var sleepers: [Int: (timer: Timer, request: ServerRequest)] = [:]
  private var streams: [Int: SandboxByteStream] = [:]
  /// `/api/v1/truncate` replies waiting to be cut.
  private var cutters: [Int: (timer: Timer, request: ServerRequest)] = [:]
  private var nextKey = 0
  /// `/api/v1/bytes` serves at most this much (2 GiB).
  static let maxBytes = 1 << 31
  /// `/api/v1/slow` waits at most this long (10 minutes).
  static let maxSleepMs = 600_000

  init(loop: EventLoop, store: SandboxStore) {
    self.loop = loop
    self.store = store
  }

  /// Drops the replies in progress (the loop is stopping). Requests whose client already went
  /// away are ours to free; the others go with their connections when the server is freed.
  func shutdown() {
    for (_, sleeper) in sleepers {
      sleeper.timer.cancel()
      if sleeper.request.connection == nil { sleeper.request.respond(status: 503, headers: [], body: []) }
    }
    sleepers.removeAll()
    for (_, stream) in streams { stream.cancel() }
    streams.removeAll()
    for (_, cutter) in cutters {
      cutter.timer.cancel()
      if cutter.request.connection == nil { cutter.request.abort() }
    }
    cutters.removeAll()
  }

  func handle(_ request: ServerRequest) {
    guard request.isWellFormed else {
      fail(request, .badRequest("Malformed HTTP request"))
      return
    }
    let target = request.target
    let path = String(target.prefix { $0 != "?" })
    switch path {
    case "/auth/login", "/auth/refresh", "/auth/logout":
      guard request.method == "POST" else {
        fail(request, .methodNotAllowed(request.method, path), extraHeaders: [("Allow", "POST")])
        return
      }
      store.recordAuth(path: path, traceparent: request.header("traceparent"))
      let delay = store.loginDelay
      if path == "/auth/login" && delay > 0 {
        // A slow API at start-up: the login answers later, without blocking the loop.
        let key = takeKey()
        let timer = Timer(loop: loop) { [unowned self, unowned request] in
          self.auth(request, path: path)
          self.sleepers[key] = nil
        }
        sleepers[key] = (timer, request)
        timer.schedule(after: delay)
        return
      }
      auth(request, path: path)
    case _ where path == "/api/v1" || path.hasPrefix("/api/v1/"):
      api(request, path: path, query: SandboxQuery(target: target))
    default:
      fail(request, .notFound(path))
    }
  }

  // MARK: /auth

  private func auth(_ request: ServerRequest, path: String) {
    let formats = store.formats
    let tokens: Result<SandboxTokenPair, SandboxFailure>
    switch path {
    case "/auth/login":
      tokens = store.login(body: request.body)
    case "/auth/refresh":
      tokens = store.refresh(body: request.body)
    default:
      switch store.logout(authorization: request.header("Authorization")) {
      case .success:
        let result = SandboxJSON.LogoutResult()
        let body = formats.envelope ? SandboxJSON.encode(SandboxJSON.Envelope(data: result)) : SandboxJSON.encode(result)
        json(request, status: 200, body: body)
      case .failure(let failure):
        fail(request, failure)
      }
      return
    }
    switch tokens {
    case .success(let pair):
      let payload = SandboxJSON.Tokens(pair, clientIDForm: formats.clientID)
      let body = formats.envelope ? SandboxJSON.encode(SandboxJSON.Envelope(data: payload)) : SandboxJSON.encode(payload)
      json(request, status: 200, body: body, extraHeaders: [("Cache-Control", "no-store")])
    case .failure(let failure):
      fail(request, failure)
    }
  }

  // MARK: /api/v1

  private func api(_ request: ServerRequest, path: String, query: SandboxQuery) {
    let method = request.method
    let body = request.body
    store.record(SandboxRecordedRequest(method: method, target: request.target, headers: request.headers, body: body))
    let clientID: Int
    switch store.authorize(authorization: request.header("Authorization")) {
    case .success(let client): clientID = client
    case .failure(let failure):
      fail(request, failure)
      return
    }
    if path.hasPrefix("/api/v1/echo") {
      let echo = SandboxJSON.Echo(
        method: method, target: request.target, headers: request.headers.map { [$0.name, $0.value] },
        bodyBase64: Data(body).base64EncodedString(), bodyLength: body.count, clientID: clientID,
        peerPort: request.clientPort)
      json(request, status: 200, body: SandboxJSON.encode(echo))
    } else if path == "/api/v1/products" {
      guard method == "GET" || method == "HEAD" else {
        return fail(request, .methodNotAllowed(method, path), extraHeaders: [("Allow", "GET, HEAD")])
      }
      products(request, query: query)
    } else if path == "/api/v1/orders" {
      guard method == "POST" else { return fail(request, .methodNotAllowed(method, path), extraHeaders: [("Allow", "POST")]) }
      order(request, body: body, clientID: clientID)
    } else if path == "/api/v1/bytes" {
      guard method == "GET" || method == "HEAD" else {
        return fail(request, .methodNotAllowed(method, path), extraHeaders: [("Allow", "GET, HEAD")])
      }
      bytes(request, query: query)
    } else if path == "/api/v1/slow" {
      slow(request, query: query)
    } else if path == "/api/v1/flaky" {
      flaky(request, query: query)
    } else if path == "/api/v1/reset" {
      reset(request, query: query)
    } else if path == "/api/v1/truncate" {
      truncate(request, query: query)
    } else if path.hasPrefix("/api/v1/status/") {
      guard let code = Int(path.dropFirst("/api/v1/status/".count)), (200...599).contains(code) else {
        return fail(request, .badRequest("Status must be a number from 200 to 599"))
      }
      let retry: [(name: String, value: String)] = code == 429 || code == 503 ? [("Retry-After", "1")] : []
      json(request, status: code, body: SandboxJSON.encode(SandboxJSON.Status(status: code)), extraHeaders: retry)
    } else {
      fail(request, .notFound(path))
    }
  }

  private func products(_ request: ServerRequest, query: SandboxQuery) {
    guard let page = query.int("page", default: 1), page >= 1 else {
      return fail(request, .badRequest("page must be a whole number from 1"))
    }
    guard let limit = query.int("limit", default: 20), (1...100).contains(limit) else {
      return fail(request, .badRequest("limit must be a whole number from 1 to 100"))
    }
    let all = SandboxJSON.Product.catalogue
    let totalPages = (all.count + limit - 1) / limit
    let start = min(all.count, (page - 1) * limit)
    let items = Array(all[start..<min(all.count, start + limit)])
    json(
      request, status: 200, body: SandboxJSON.encode(items),
      extraHeaders: [
        ("X-Page", String(page)), ("X-Per-Page", String(limit)), ("X-Total-Count", String(all.count)),
        ("X-Total-Pages", String(totalPages)), ("X-Has-More", page < totalPages ? "true" : "false"),
      ])
  }

  private func order(_ request: ServerRequest, body: [UInt8], clientID: Int) {
    var wanted = SandboxJSON.OrderRequest(productID: nil, quantity: nil)
    if !body.isEmpty {
      guard let parsed = SandboxJSON.decode(SandboxJSON.OrderRequest.self, from: body) else {
        return fail(request, .badRequest("Order must be JSON {\"product_id\",\"quantity\"}"))
      }
      wanted = parsed
    }
    let productID = wanted.productID ?? 1
    let quantity = wanted.quantity ?? 1
    guard let product = SandboxJSON.Product.catalogue.first(where: { $0.id == productID }), quantity >= 1 else {
      return fail(request, .badRequest("Unknown product or bad quantity"))
    }
    let order = SandboxJSON.Order(
      id: store.nextOrder(), status: "created", productID: productID, quantity: quantity,
      pointsDebited: product.points * quantity, clientID: clientID, createdAt: SandboxJSON.timestamp(Date()))
    json(request, status: 201, body: SandboxJSON.encode(order), extraHeaders: [("Location", "/api/v1/orders/\(order.id)")])
  }

  private func bytes(_ request: ServerRequest, query: SandboxQuery) {
    guard let size = query.int("size", default: nil), (0...Self.maxBytes).contains(size) else {
      return fail(request, .badRequest("size must be a whole number of bytes from 0 to \(Self.maxBytes)"))
    }
    if request.method == "HEAD" {
      request.respond(
        status: 200, headers: [("Content-Type", "application/octet-stream"), ("Content-Length", String(size))], body: [])
      return
    }
    let key = takeKey()
    let stream = SandboxByteStream(loop: loop, request: request, size: size)
    stream.onFinish = { [unowned self] in self.streams[key] = nil }
    streams[key] = stream
    stream.start()
  }

  /// Every `/api/v1/slow` request still waiting is answered now (a test holds a request in
  /// flight with a long `ms` and lets it go when it chooses).
  func wakeSleepers() {
    for (_, sleeper) in sleepers { sleeper.timer.schedule(after: 0) }
  }

  private func slow(_ request: ServerRequest, query: SandboxQuery) {
    guard let ms = query.int("ms", default: nil), (0...Self.maxSleepMs).contains(ms) else {
      return fail(request, .badRequest("ms must be a whole number from 0 to \(Self.maxSleepMs)"))
    }
    let key = takeKey()
    let timer = Timer(loop: loop) { [unowned self, unowned request] in
      self.json(request, status: 200, body: SandboxJSON.encode(SandboxJSON.Slept(sleptMs: ms)))
      self.sleepers[key] = nil
    }
    sleepers[key] = (timer, request)
    timer.schedule(after: Double(ms) / 1000)
  }

  // MARK: fault endpoints

  /// `ANY /api/v1/flaky?key=K&fail=N[&status=503][&retry_after=S|&retry_after_date=S]`: the
  /// first N requests with key K fail with `status`, the later ones succeed.
  private func flaky(_ request: ServerRequest, query: SandboxQuery) {
    guard let key = query.string("key"), !key.isEmpty else { return fail(request, .badRequest("key is required")) }
    guard let failures = query.int("fail", default: 0), failures >= 0 else {
      return fail(request, .badRequest("fail must be a whole number from 0"))
    }
    guard let status = query.int("status", default: 503), (200...599).contains(status) else {
      return fail(request, .badRequest("status must be a number from 200 to 599"))
    }
    let hit = store.hit(key)
    guard hit > failures else {
      var extra: [(name: String, value: String)] = []
      if let seconds = query.string("retry_after") { extra.append(("Retry-After", seconds)) }
      if let ahead = query.int("retry_after_date", default: nil) {
        extra.append(("Retry-After", SandboxRouter.httpDate(Date().addingTimeInterval(Double(ahead)))))
      }
      return faultReply(request, status: status, body: SandboxJSON.encode(SandboxJSON.Status(status: status)), extraHeaders: extra)
    }
    faultReply(request, status: 200, body: SandboxJSON.encode(FlakyResult(key: key, hit: hit, method: request.method)))
  }

  /// `ANY /api/v1/reset?key=K`: the whole request was read (evhttp hands it over complete);
  /// count it, then drop the connection without answering.
  private func reset(_ request: ServerRequest, query: SandboxQuery) {
    if let key = query.string("key") { _ = store.hit(key) }
    // Out of evhttp's request callback: the connection is freed on the next loop pass.
    loop.soon { request.abort() }
  }

  /// `GET /api/v1/truncate?key=K&size=N&send=M[&chunked=1]`: a 200 head announcing N bytes
  /// (or chunked), M bytes of body, then the connection is cut once they are on the wire.
  private func truncate(_ request: ServerRequest, query: SandboxQuery) {
    guard let size = query.int("size", default: 1024), (1...(1 << 24)).contains(size) else {
      return fail(request, .badRequest("size must be a whole number from 1 to \(1 << 24)"))
    }
    guard let send = query.int("send", default: size / 2), (0..<size).contains(send) else {
      return fail(request, .badRequest("send must be a whole number below size"))
    }
    if let key = query.string("key") { _ = store.hit(key) }
    var headers: [(name: String, value: String)] = [("Content-Type", "application/octet-stream")]
    if query.int("chunked", default: 0) != 1 { headers.append(("Content-Length", String(size))) }
    request.startStream(status: 200, headers: headers)
    let key = takeKey()
    // Cut once the bytes were written (the drain callback), or after a second at the latest.
    let timer = Timer(loop: loop) { [unowned self] in
      // The entry holds the request: take it out, then cut.
      self.cutters.removeValue(forKey: key)?.request.abort()
    }
    cutters[key] = (timer, request)
    timer.schedule(after: 1)
    let body = (0..<send).map { UInt8($0 % 251) }
    guard !body.isEmpty else { return timer.schedule(after: 0.05) }
    body.withUnsafeBytes { bytes in
      request.send(bytes) { [weak self, weak timer] in
        // Not from inside evhttp's write callback: on the next pass, with a little slack for
        // the peer to read what was written.
        self?.loop.soon { timer?.schedule(after: 0.05) }
      }
    }
  }

  /// A JSON reply, without its body to a HEAD (evhttp would send it, and the client would read
  /// it as the start of the next response on the connection).
  private func faultReply(
    _ request: ServerRequest, status: Int, body: [UInt8], extraHeaders: [(name: String, value: String)] = []
  ) {
    if request.method == "HEAD" {
      request.respond(
        status: status, headers: [SandboxJSON.contentType, ("Content-Length", String(body.count))] + extraHeaders, body: [])
    } else {
      json(request, status: status, body: body, extraHeaders: extraHeaders)
    }
  }

  /// An IMF-fixdate (RFC 9110 §5.6.7), as a `Retry-After` date.
  static func httpDate(_ date: Date) -> String {
    HTTPDate.format(time_t(date.timeIntervalSince1970.rounded(.up)))
  }

  // MARK: replies

  private func takeKey() -> Int {
    nextKey += 1
    return nextKey
  }

  private func json(
    _ request: ServerRequest, status: Int, body: [UInt8], extraHeaders: [(name: String, value: String)] = []
  ) {
    request.respond(status: status, headers: [SandboxJSON.contentType] + extraHeaders, body: body)
  }

  private func fail(_ request: ServerRequest, _ failure: SandboxFailure, extraHeaders: [(name: String, value: String)] = []) {
    let reply = failure.reply(flat: store.formats.flatErrors)
    request.respond(status: failure.status, headers: reply.headers + extraHeaders, body: reply.body)
  }
}

/// The answer of `/api/v1/flaky` once it stops failing.
private struct FlakyResult: Encodable {
  let key: String
  let hit: Int
  let method: String
}

/// The query string of a request target, for the few numeric parameters the API takes.
struct SandboxQuery {
  private var pairs: [(name: Substring, value: Substring)] = []

  init(target: String) {
    guard let mark = target.firstIndex(of: "?") else { return }
    for item in target[target.index(after: mark)...].split(separator: "&") {
      let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
      pairs.append((parts[0], parts.count > 1 ? parts[1] : ""))
    }
  }

  /// The last value of `name` as given (not percent-decoded), if any.
  func string(_ name: String) -> String? {
    pairs.last(where: { $0.name == name }).map { String($0.value) }
  }

  /// The last value of `name` as a whole number; `fallback` when absent, nil when not a number.
  func int(_ name: String, default fallback: Int?) -> Int? {
    guard let value = pairs.last(where: { $0.name == name })?.value else { return fallback }
    return Int(value)
  }
}
