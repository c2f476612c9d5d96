import CCurl
import CShims
import Glibc

/// What one control-plane call sends (a login, refresh or logout, an alert webhook).
public struct CurlRequest {
  public var url: String
  public var method: String
  /// Complete header lines ("Name: value"); "Name:" removes a header curl would add.
  public var headerLines: [String]
  public var body: [UInt8]?
  public var tls: UpstreamTLS
  public var connectTimeoutMs: Int
  /// An attempt that moves no byte for this long fails (curl's low-speed limit).
  public var stallTimeoutSeconds: Int
  /// A new connection, not a pooled one.
  public var freshConnection = false
  public var maxConnectionAgeSeconds = 30
  /// Plain http too (the caller has checked the host is loopback, e.g. an alert webhook on
  /// 127.0.0.1); https only otherwise.
  public var allowPlainHTTP = false
  /// Verify the peer with this already parsed store (a `sibling()` of the data path's, for the
  /// same upstream) instead of having curl parse `tls.caFile` or the system bundle again. curl
  /// sets verification flags on it (partial chains, trusted first), so never the workers' own.
  /// curl's TLS session cache does not know the store: on one `CurlMulti`, use one per host.
  public var trust: TrustStore?

  public init(
    url: String, method: String, headerLines: [String], body: [UInt8]?, tls: UpstreamTLS, connectTimeoutMs: Int,
    stallTimeoutSeconds: Int
  ) {
    self.url = url
    self.method = method
    self.headerLines = headerLines
    self.body = body
    self.tls = tls
    self.connectTimeoutMs = connectTimeoutMs
    self.stallTimeoutSeconds = stallTimeoutSeconds
  }
}

/// How an attempt ended.
public struct CurlResult: Sendable {
  public var code: Int32
  public var isSuccess: Bool { code == 0 }
  /// curl's own, secret-free wording of `code`.
  public var curlMessage: String { String(cString: curl_easy_strerror(CURLcode(UInt32(code)))) }
}

/// One upstream HTTP exchange on a `CurlMulti`, with the response delivered as it arrives.
public final class CurlTransfer {
  let easy: UnsafeMutableRawPointer
  private var headerList: UnsafeMutablePointer<curl_slist>?
  private var status = 0
  private var responseHeaders: [(name: String, value: String)] = []
  private var headDelivered = false
  private var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE))
  /// Kept while curl may set up a connection with it (each context also holds a reference).
  private var trust: TrustStore?

  /// The final response's status and headers (1xx responses are skipped).
  public var onHead: ((Int, [(name: String, value: String)]) -> Void)?
  /// Body bytes as they arrive (the control plane's answers are small: no backpressure).
  public var onData: ((UnsafeRawBufferPointer) -> Void)?
  public var onComplete: ((CurlResult) -> Void)?

  public init(_ request: CurlRequest) throws(EventError) {
    guard let easy = curl_easy_init() else { throw EventError("curl_easy_init failed") }
    self.easy = easy
    // Context: unretained self in CURLOPT_PRIVATE and the callbacks; the owning CurlMulti keeps
    // the transfer alive while curl may call back, and detach() removes the handle first.
    let me = Unmanaged.passUnretained(self).toOpaque()
    ap_curl_easy_setopt_ptr(easy, CURLOPT_PRIVATE, me)
    ap_curl_easy_setopt_ptr(easy, CURLOPT_URL, request.url)
    ap_curl_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
    ap_curl_easy_setopt_long(easy, CURLOPT_PATH_AS_IS, 1)
    ap_curl_easy_setopt_long(easy, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_1_1))
    ap_curl_easy_setopt_long(easy, CURLOPT_FOLLOWLOCATION, 0)
    ap_curl_easy_setopt_ptr(easy, CURLOPT_PROTOCOLS_STR, request.allowPlainHTTP ? "http,https" : "https")
    ap_curl_easy_setopt_long(easy, CURLOPT_SSL_VERIFYPEER, 1)
    ap_curl_easy_setopt_long(easy, CURLOPT_SSL_VERIFYHOST, 2)
    ap_curl_easy_setopt_long(easy, CURLOPT_SSLVERSION, Int(CURL_SSLVERSION_TLSv1_2))
    if let trust = request.trust, ap_curl_easy_verify_with_store(easy, trust.store) == CURLE_OK {
      self.trust = trust
    } else if let ca = request.tls.caFile {
      ap_curl_easy_setopt_ptr(easy, CURLOPT_CAINFO, ca)
    }
    if !request.tls.pinnedPublicKeys.isEmpty {
      let pins = request.tls.pinnedPublicKeys.map { "sha256//\($0)" }.joined(separator: ";")
      ap_curl_easy_setopt_ptr(easy, CURLOPT_PINNEDPUBLICKEY, pins)
    }
    if let cert = request.tls.clientCertificate { ap_curl_easy_setopt_ptr(easy, CURLOPT_SSLCERT, cert) }
    if let key = request.tls.clientKey { ap_curl_easy_setopt_ptr(easy, CURLOPT_SSLKEY, key) }
    ap_curl_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, request.connectTimeoutMs)
    ap_curl_easy_setopt_long(easy, CURLOPT_LOW_SPEED_LIMIT, 1)
    ap_curl_easy_setopt_long(easy, CURLOPT_LOW_SPEED_TIME, max(1, request.stallTimeoutSeconds))
    ap_curl_easy_setopt_long(easy, CURLOPT_MAXAGE_CONN, request.maxConnectionAgeSeconds)
    if request.freshConnection { ap_curl_easy_setopt_long(easy, CURLOPT_FRESH_CONNECT, 1) }
    errorBuffer.withUnsafeMutableBufferPointer { _ = ap_curl_easy_setopt_ptr(easy, CURLOPT_ERRORBUFFER, $0.baseAddress) }

    switch request.method {
    case "GET": ap_curl_easy_setopt_long(easy, CURLOPT_HTTPGET, 1)
    case "HEAD": ap_curl_easy_setopt_long(easy, CURLOPT_NOBODY, 1)
    default: ap_curl_easy_setopt_ptr(easy, CURLOPT_CUSTOMREQUEST, request.method)
    }
    if let body = request.body, !body.isEmpty || ["POST", "PUT", "PATCH"].contains(request.method) {
      ap_curl_easy_setopt_off(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count))
      // COPYPOSTFIELDS: curl keeps its own copy, so the body's lifetime is not ours to track.
      body.withUnsafeBytes { _ = ap_curl_easy_setopt_ptr(easy, CURLOPT_COPYPOSTFIELDS, $0.baseAddress ?? UnsafeRawPointer(bitPattern: 1)) }
    }
    for line in request.headerLines { headerList = curl_slist_append(headerList, line) }
    ap_curl_easy_setopt_ptr(easy, CURLOPT_HTTPHEADER, headerList)

    ap_curl_easy_setopt_data_cb(easy, CURLOPT_HEADERFUNCTION, curlHeaderTrampoline)
    ap_curl_easy_setopt_ptr(easy, CURLOPT_HEADERDATA, me)
    ap_curl_easy_setopt_data_cb(easy, CURLOPT_WRITEFUNCTION, curlWriteTrampoline)
    ap_curl_easy_setopt_ptr(easy, CURLOPT_WRITEDATA, me)
  }

  deinit {
    curl_easy_cleanup(easy)
    curl_slist_free_all(headerList)
  }

  func detach(from multi: UnsafeMutableRawPointer) {
    curl_multi_remove_handle(multi, easy)
  }

  func complete(_ code: CURLcode) {
    if code == CURLE_OK && !headDelivered { deliverHead() }
    let callback = onComplete
    onComplete = nil
    onHead = nil
    onData = nil
    callback?(CurlResult(code: Int32(code.rawValue)))
  }

  private func deliverHead() {
    headDelivered = true
    onHead?(status, responseHeaders)
  }

  fileprivate func headerLine(_ line: UnsafeRawBufferPointer) {
    var end = line.count
    while end > 0, line[end - 1] == 0x0A || line[end - 1] == 0x0D { end -= 1 }
    if end == 0 {
      // End of a header block: 1xx blocks are followed by the real one.
      if status >= 200 && !headDelivered { deliverHead() }
      return
    }
    let text = String(decoding: UnsafeRawBufferPointer(rebasing: line[0..<end]), as: UTF8.self)
    if text.hasPrefix("HTTP/") {
      let parts = text.split(separator: " ", maxSplits: 2)
      status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
      responseHeaders.removeAll()
      return
    }
    guard let colon = text.firstIndex(of: ":") else { return }
    let name = String(text[..<colon])
    let value = text[text.index(after: colon)...].trimmingSpaces()
    responseHeaders.append((name, value))
  }

  fileprivate func data(_ bytes: UnsafeRawBufferPointer) {
    if !headDelivered { deliverHead() }
    onData?(bytes)
  }
}

extension Substring {
  func trimmingSpaces() -> String {
    var s = self[...]
    while let first = s.first, first == " " || first == "\t" { s = s.dropFirst() }
    while let last = s.last, last == " " || last == "\t" { s = s.dropLast() }
    return String(s)
  }
}

/* CURLOPT_HEADERFUNCTION: one header line per call, CRLF included. */
private func curlHeaderTrampoline(_ ptr: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ ctx: UnsafeMutableRawPointer?) -> Int {
  guard let ptr, let ctx else { return 0 }
  let transfer = Unmanaged<CurlTransfer>.fromOpaque(ctx).takeUnretainedValue()
  transfer.headerLine(UnsafeRawBufferPointer(start: ptr, count: size * count))
  return size * count
}

/* CURLOPT_WRITEFUNCTION: body bytes as they arrive. */
private func curlWriteTrampoline(_ ptr: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ ctx: UnsafeMutableRawPointer?) -> Int {
  guard let ptr, let ctx else { return 0 }
  let transfer = Unmanaged<CurlTransfer>.fromOpaque(ctx).takeUnretainedValue()
  transfer.data(UnsafeRawBufferPointer(start: ptr, count: size * count))
  return size * count
}
