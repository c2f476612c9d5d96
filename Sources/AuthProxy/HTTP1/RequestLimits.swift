/// Limits the framer enforces on every request head and body.
public struct RequestLimits: Sendable, Equatable {
  /// Longest request line (method, target and version, without the line ending); longer -> 414.
  public var maxRequestLine: Int
  /// Largest head, request line and line endings included (also the bound of a trailer section
  /// and of a chunk-size line); larger -> 431.
  public var maxHeaderBytes: Int
  /// Most header fields in a head (also the bound of a trailer section); more -> 431.
  public var maxHeaderCount: Int
  /// Largest body: a larger Content-Length or sum of chunk sizes -> 413.
  public var maxBody: Int

  public init(maxBody: Int, maxRequestLine: Int = 8192, maxHeaderBytes: Int = 65536, maxHeaderCount: Int = 100) {
    self.maxBody = maxBody
    self.maxRequestLine = maxRequestLine
    self.maxHeaderBytes = maxHeaderBytes
    self.maxHeaderCount = maxHeaderCount
  }
}

/// Why a request was refused before it reached the worker.
public struct FramingRejection: Sendable, Equatable, Error {
  /// 400, 413, 414 or 431.
  public var status: Int
  /// "bad_request", "body_too_large", "uri_too_long" or "headers_too_large".
  public var code: String
  /// Names the cause; never echoes anything the client sent.
  public var message: String
  /// The X-Request-ID of the rejected request if its header line was complete and sane, else nil.
  public var requestID: String?

  public init(status: Int, code: String, message: String, requestID: String?) {
    self.status = status
    self.code = code
    self.message = message
    self.requestID = requestID
  }
}
