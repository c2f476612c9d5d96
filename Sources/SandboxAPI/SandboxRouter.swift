import AuthProxy
import FoundationEssentials

/// Answers the sandbox API's requests. Lives on the sandbox's loop thread only.
final class SandboxRouter {
  private let loop: EventLoop
  private let store: SandboxStore
  /// Replies in progress: `/api/v1/slow` waits and `/api/v1/bytes` streams, by a serial key.
  private var sleepers: [Int: (timer: Timer, request: ServerRequest)] = [:]
  private var streams: [Int: SandboxByteStream] = [:]
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
      case .success(let outcome):
        let result = SandboxJSON.LogoutResult(revokedTokens: outcome.revoked, clientID: outcome.clientID)
        let body = formats.envelope ? SandboxJSON.encode(SandboxJSON.Envelope(data: result)) : SandboxJSON.encode(result)
        json(request, status: 200, body: body)
      case .failure(let failure):
        fail(request, failure)
      }
      return
    }
    switch tokens {
    case .success(let pair):
      let payload = SandboxJSON.Tokens(pair)
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
    let clientID: String
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
      guard method == "GET" || method == "HEAD" else { return fail(request, .methodNotAllowed(method, path), extraHeaders: [("Allow", "GET, HEAD")]) }
      products(request, query: query)
    } else if path == "/api/v1/orders" {
      guard method == "POST" else { return fail(request, .methodNotAllowed(method, path), extraHeaders: [("Allow", "POST")]) }
      order(request, body: body, clientID: clientID)
    } else if path == "/api/v1/bytes" {
      guard method == "GET" || method == "HEAD" else { return fail(request, .methodNotAllowed(method, path), extraHeaders: [("Allow", "GET, HEAD")]) }
      bytes(request, query: query)
    } else if path == "/api/v1/slow" {
      slow(request, query: query)
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

  private func order(_ request: ServerRequest, body: [UInt8], clientID: String) {
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

  /// The last value of `name` as a whole number; `fallback` when absent, nil when not a number.
  func int(_ name: String, default fallback: Int?) -> Int? {
    guard let value = pairs.last(where: { $0.name == name })?.value else { return fallback }
    return Int(value)
  }
}
