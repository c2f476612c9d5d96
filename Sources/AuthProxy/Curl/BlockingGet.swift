import CCurl
import COpenSSL
import CShims

/// One blocking HTTP GET over curl's easy interface, for reads that happen before the event
/// loops start or on a thread that may wait (the Vault source). TLS 1.2+ verified against
/// the system store or `caFile`; redirects are not followed; the body is capped.
struct BlockingGet {
  var url: String
  /// Complete header lines. They may carry a token: curl's copies are cleansed afterwards.
  var headerLines: [String]
  /// Plain http (the caller has checked the host is loopback); https only otherwise.
  var allowPlainHTTP: Bool
  var caFile: String?
  var connectTimeoutMs: Int
  var totalTimeoutMs: Int
  var maxBody: Int

  struct Response {
    var status: Int
    var body: [UInt8]
  }

  struct Failure: Error {
    var code: CURLcode
    /// curl's words: host, port, TLS reason; never a header or the body.
    var detail: String
    var bodyTooLarge: Bool
  }

  func perform() -> Result<Response, Failure> {
    _ = CurlMulti.globalInit
    guard let easy = curl_easy_init() else {
      return .failure(Failure(code: CURLE_FAILED_INIT, detail: "curl_easy_init failed", bodyTooLarge: false))
    }
    defer { curl_easy_cleanup(easy) }
    var headerList: UnsafeMutablePointer<curl_slist>?
    for line in headerLines { headerList = curl_slist_append(headerList, line) }
    defer {
      var node = headerList
      while let entry = node {
        if let text = entry.pointee.data { OPENSSL_cleanse(text, strlen(text)) }
        node = entry.pointee.next
      }
      curl_slist_free_all(headerList)
    }
    var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE))
    let sink = ResponseSink(limit: maxBody)
    ap_curl_easy_setopt_ptr(easy, CURLOPT_URL, url)
    ap_curl_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
    ap_curl_easy_setopt_long(easy, CURLOPT_HTTPGET, 1)
    ap_curl_easy_setopt_ptr(easy, CURLOPT_PROTOCOLS_STR, allowPlainHTTP ? "http,https" : "https")
    ap_curl_easy_setopt_long(easy, CURLOPT_FOLLOWLOCATION, 0)
    ap_curl_easy_setopt_long(easy, CURLOPT_SSL_VERIFYPEER, 1)
    ap_curl_easy_setopt_long(easy, CURLOPT_SSL_VERIFYHOST, 2)
    ap_curl_easy_setopt_long(easy, CURLOPT_SSLVERSION, Int(CURL_SSLVERSION_TLSv1_2))
    if let caFile { ap_curl_easy_setopt_ptr(easy, CURLOPT_CAINFO, caFile) }
    ap_curl_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, connectTimeoutMs)
    ap_curl_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, totalTimeoutMs)
    ap_curl_easy_setopt_ptr(easy, CURLOPT_HTTPHEADER, headerList)
    ap_curl_easy_setopt_data_cb(easy, CURLOPT_WRITEFUNCTION, blockingGetWriteTrampoline)
    // Context: unretained sink; `withExtendedLifetime` keeps it alive while curl_easy_perform
    // may call back, and curl calls nothing back after it returns.
    ap_curl_easy_setopt_ptr(easy, CURLOPT_WRITEDATA, Unmanaged.passUnretained(sink).toOpaque())
    let code = errorBuffer.withUnsafeMutableBufferPointer { buffer in
      ap_curl_easy_setopt_ptr(easy, CURLOPT_ERRORBUFFER, buffer.baseAddress)
      defer { ap_curl_easy_setopt_ptr(easy, CURLOPT_ERRORBUFFER, nil) }
      return withExtendedLifetime(sink) { curl_easy_perform(easy) }
    }
    guard code == CURLE_OK else {
      sink.bytes.wipe()
      let written = String(cBuffer: errorBuffer)
      let detail = written.isEmpty ? String(cString: curl_easy_strerror(code)) : written
      return .failure(Failure(code: code, detail: detail, bodyTooLarge: sink.overflowed))
    }
    var status = 0
    ap_curl_easy_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
    return .success(Response(status: status, body: sink.bytes))
  }
}

/// The body as curl delivers it, up to `limit` bytes.
private final class ResponseSink {
  var bytes: [UInt8] = []
  var overflowed = false
  let limit: Int

  init(limit: Int) {
    self.limit = limit
    // One allocation for the usual answer, so growth leaves no stray copies of a secret.
    bytes.reserveCapacity(min(limit, 16 * 1024))
  }
}

/* CURLOPT_WRITEFUNCTION: appends body bytes; returning less than offered fails the transfer
   with CURLE_WRITE_ERROR, which is how the size cap stops it. */
private func blockingGetWriteTrampoline(
  _ ptr: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ ctx: UnsafeMutableRawPointer?
) -> Int {
  guard let ptr, let ctx else { return 0 }
  let sink = Unmanaged<ResponseSink>.fromOpaque(ctx).takeUnretainedValue()
  let length = size * count
  guard sink.bytes.count + length <= sink.limit else {
    sink.overflowed = true
    return 0
  }
  sink.bytes.append(contentsOf: UnsafeRawBufferPointer(start: ptr, count: length))
  return length
}
