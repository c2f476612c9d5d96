/// W3C Trace Context (https://www.w3.org/TR/trace-context/) for one request. The proxy is a
/// span, as Envoy is: a valid incoming `traceparent` keeps its trace-id and flags and gets our
/// own parent-id (span id), and its `tracestate` goes on unchanged; without one, or with an
/// invalid one, the proxy starts a trace (random ids, flags 00) and drops any `tracestate`.
public struct TraceContext: Sendable, Equatable {
  /// 32 lower-case hex digits, for the access log.
  public let traceID: String
  /// The `traceparent` sent upstream.
  public let traceparent: String
  /// The app's `tracestate` goes upstream (its `traceparent` was valid).
  public let keepsTracestate: Bool

  /// The trace-id and flags of a valid `traceparent`, or nil. Version 00 must be exactly
  /// `00-<32 hex>-<16 hex>-<2 hex>` (lower-case, ids not all zero); a higher version (not ff)
  /// may carry more after a `-`, and its first four parts are read the same way.
  public static func parse(_ value: some Collection<UInt8>) -> (traceID: String, flags: String)? {
    let bytes = Array(value.prefix(56))
    guard bytes.count >= 55 else { return nil }
    func isHex(_ b: UInt8) -> Bool { (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x66) }
    func allHex(_ range: Range<Int>) -> Bool { range.allSatisfy { isHex(bytes[$0]) } }
    func allZero(_ range: Range<Int>) -> Bool { range.allSatisfy { bytes[$0] == 0x30 } }
    guard allHex(0..<2), bytes[2] == 0x2D, allHex(3..<35), bytes[35] == 0x2D, allHex(36..<52), bytes[52] == 0x2D,
      allHex(53..<55)
    else { return nil }
    let version = (bytes[0], bytes[1])
    if version == (0x66, 0x66) { return nil }  // ff is invalid
    if version == (0x30, 0x30) {
      guard value.count == 55 else { return nil }
    } else if bytes.count > 55 && bytes[55] != 0x2D {
      return nil
    }
    if allZero(3..<35) || allZero(36..<52) { return nil }
    return (String(decoding: bytes[3..<35], as: UTF8.self), String(decoding: bytes[53..<55], as: UTF8.self))
  }

  /// The context for a request whose app sent `fields`: `traceparent` at most once (two are
  /// invalid), ids from the worker's generator.
  static func make(appFields fields: HTTPFields, random: inout some RandomNumberGenerator) -> TraceContext {
    var found: Int?
    var count = 0
    for i in fields.indices where fields.name(at: i, is: FieldName.traceparent) {
      found = i
      count += 1
    }
    if count == 1, let found, let parsed = parse(fields.value(at: found)) {
      return TraceContext(
        traceID: parsed.traceID, traceparent: "00-\(parsed.traceID)-\(hex(random.next()))-\(parsed.flags)",
        keepsTracestate: true)
    }
    return started(random: &random)
  }

  /// A new trace: for requests without a valid `traceparent`, and for logins and refreshes.
  public static func started(random: inout some RandomNumberGenerator) -> TraceContext {
    var high = random.next()
    let low = random.next()
    if high == 0 && low == 0 { high = 1 }
    let traceID = hex(high) + hex(low)
    return TraceContext(traceID: traceID, traceparent: "00-\(traceID)-\(hex(random.next() | 1))-00", keepsTracestate: false)
  }

  public static func started() -> TraceContext {
    var random = SystemRandomNumberGenerator()
    return started(random: &random)
  }

  /// 16 lower-case hex digits.
  static func hex(_ value: UInt64) -> String {
    var out = [UInt8](repeating: 0x30, count: 16)
    for i in 0..<16 {
      let nibble = UInt8((value >> UInt64((15 - i) * 4)) & 0xF)
      out[i] = nibble < 10 ? 0x30 + nibble : 0x57 + nibble
    }
    return String(decoding: out, as: UTF8.self)
  }
}
