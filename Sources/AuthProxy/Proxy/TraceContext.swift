/// W3C Trace Context (https://www.w3.org/TR/trace-context/) for one request. The proxy is a
/// span, as Envoy is: a valid incoming `traceparent` keeps its trace-id and flags and gets our
/// own parent-id (span id), and its `tracestate` goes on unchanged; without one, or with an
/// invalid one, the proxy starts a trace (random ids, flags 00) and drops any `tracestate`.
public struct TraceContext: Sendable, Equatable {
  /// The `traceparent` sent upstream: `00-<trace-id>-<our span id>-<flags>`.
  public let traceparent: String
  /// The app's `tracestate` goes upstream (its `traceparent` was valid).
  public let keepsTracestate: Bool

  /// 32 lower-case hex digits, for the access log.
  public var traceID: String { String(decoding: traceparent.utf8.dropFirst(3).prefix(32), as: UTF8.self) }

  /// Where a valid `traceparent`'s trace-id and flags are, or nil. Version 00 must be exactly
  /// `00-<32 hex>-<16 hex>-<2 hex>` (lower-case, ids not all zero); a higher version (not ff)
  /// may carry more after a `-`, and its first four parts are read the same way.
  static func validate(_ bytes: ArraySlice<UInt8>) -> Bool {
    guard bytes.count >= 55 else { return false }
    let s = bytes.startIndex
    func isHex(_ b: UInt8) -> Bool { (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x66) }
    func allHex(_ range: Range<Int>) -> Bool { range.allSatisfy { isHex(bytes[s + $0]) } }
    func allZero(_ range: Range<Int>) -> Bool { range.allSatisfy { bytes[s + $0] == 0x30 } }
    guard allHex(0..<2), bytes[s + 2] == 0x2D, allHex(3..<35), bytes[s + 35] == 0x2D, allHex(36..<52), bytes[s + 52] == 0x2D,
      allHex(53..<55)
    else { return false }
    let version = (bytes[s], bytes[s + 1])
    if version == (0x66, 0x66) { return false }  // ff is invalid
    if version == (0x30, 0x30) {
      guard bytes.count == 55 else { return false }
    } else if bytes.count > 55 && bytes[s + 55] != 0x2D {
      return false
    }
    return !allZero(3..<35) && !allZero(36..<52)
  }

  /// The trace-id and flags of a valid `traceparent`, or nil.
  public static func parse(_ value: some Collection<UInt8>) -> (traceID: String, flags: String)? {
    let bytes = Array(value)[...]
    guard validate(bytes) else { return nil }
    return (String(decoding: bytes[3..<35], as: UTF8.self), String(decoding: bytes[53..<55], as: UTF8.self))
  }

  private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

  private static func appendHex(_ value: UInt64, to out: inout [UInt8]) {
    var shift: UInt64 = 60
    while true {
      out.append(hexDigits[Int((value >> shift) & 0xF)])
      if shift == 0 { break }
      shift -= 4
    }
  }

  /// The context for a request whose app sent `fields`: `traceparent` at most once (two are
  /// invalid), ids from the worker's generator. One buffer and one string per request.
  static func make(appFields fields: HTTPFields, random: inout some RandomNumberGenerator) -> TraceContext {
    var found: Int?
    var count = 0
    for i in fields.indices where fields.name(at: i, is: FieldName.traceparent) {
      found = i
      count += 1
    }
    if count == 1, let found {
      let value = fields.value(at: found)
      if validate(value) {
        let s = value.startIndex
        var out: [UInt8] = []
        out.reserveCapacity(55)
        out.append(contentsOf: [0x30, 0x30, 0x2D])
        out.append(contentsOf: value[(s + 3)..<(s + 36)])
        appendHex(random.next() | 1, to: &out)
        out.append(0x2D)
        out.append(contentsOf: value[(s + 53)..<(s + 55)])
        return TraceContext(traceparent: String(decoding: out, as: UTF8.self), keepsTracestate: true)
      }
    }
    return started(random: &random)
  }

  /// A new trace: for requests without a valid `traceparent`, and for logins and refreshes.
  public static func started(random: inout some RandomNumberGenerator) -> TraceContext {
    var high = random.next()
    let low = random.next()
    if high == 0 && low == 0 { high = 1 }
    var out: [UInt8] = []
    out.reserveCapacity(55)
    out.append(contentsOf: [0x30, 0x30, 0x2D])
    appendHex(high, to: &out)
    appendHex(low, to: &out)
    out.append(0x2D)
    appendHex(random.next() | 1, to: &out)
    out.append(contentsOf: [0x2D, 0x30, 0x30])
    return TraceContext(traceparent: String(decoding: out, as: UTF8.self), keepsTracestate: false)
  }

  public static func started() -> TraceContext {
    var random = SystemRandomNumberGenerator()
    return started(random: &random)
  }
}
