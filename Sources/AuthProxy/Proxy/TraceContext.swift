/// W3C Trace Context (https://www.w3.org/TR/trace-context/) for one request. The proxy is a
/// span, as Envoy is: a valid incoming `traceparent` keeps its trace-id and flags and gets our
/// own parent-id (span id), and its `tracestate` goes on unchanged; without one, or with an
/// invalid one, the proxy starts a trace (random ids, flags 00) and drops any `tracestate`.
public struct TraceContext: Sendable, Equatable {
  // The ids as numbers: a request's context is made, sent and logged without a string.
  let traceHigh: UInt64
  let traceLow: UInt64
  /// Our span id, the `traceparent`'s parent-id as it goes upstream.
  let spanID: UInt64
  let flags: UInt8
  /// The app's `tracestate` goes upstream (its `traceparent` was valid).
  public let keepsTracestate: Bool

  /// The `traceparent` sent upstream: `00-<trace-id>-<our span id>-<flags>`.
  public var traceparent: String {
    var out: [UInt8] = []
    appendTraceparent(to: &out)
    return String(decoding: out, as: UTF8.self)
  }

  /// 32 lower-case hex digits, for the access log.
  public var traceID: String {
    var out: [UInt8] = []
    appendTraceID(to: &out)
    return String(decoding: out, as: UTF8.self)
  }

  /// The context a valid `traceparent` names, keeping its span id (a context read back, e.g.
  /// from a log); nil when it is not valid.
  public init?(traceparent: String) {
    let bytes = Array(traceparent.utf8)[...]
    guard TraceContext.validate(bytes) else { return nil }
    self.init(
      traceHigh: TraceContext.hex(bytes, 3, 16), traceLow: TraceContext.hex(bytes, 19, 16), spanID: TraceContext.hex(bytes, 36, 16),
      flags: UInt8(TraceContext.hex(bytes, 53, 2)), keepsTracestate: true)
  }

  init(traceHigh: UInt64, traceLow: UInt64, spanID: UInt64, flags: UInt8, keepsTracestate: Bool) {
    self.traceHigh = traceHigh
    self.traceLow = traceLow
    self.spanID = spanID
    self.flags = flags
    self.keepsTracestate = keepsTracestate
  }

  func appendTraceID(to out: inout [UInt8]) {
    out.appendHex(traceHigh)
    out.appendHex(traceLow)
  }

  func appendTraceparent(to out: inout [UInt8]) {
    out.append(contentsOf: [0x30, 0x30, 0x2D])
    appendTraceID(to: &out)
    out.append(0x2D)
    out.appendHex(spanID)
    out.append(0x2D)
    out.append(TraceContext.hexDigit(flags &>> 4))
    out.append(TraceContext.hexDigit(flags & 0xF))
  }

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

  /// The lower-case hex digit of a nibble.
  private static func hexDigit(_ nibble: UInt8) -> UInt8 { nibble &+ (nibble < 10 ? 0x30 : 0x57) }

  /// The number `count` hex digits at `offset` of an already validated value spell.
  private static func hex(_ bytes: ArraySlice<UInt8>, _ offset: Int, _ count: Int) -> UInt64 {
    var value: UInt64 = 0
    for b in bytes[(bytes.startIndex + offset)..<(bytes.startIndex + offset + count)] {
      value = value << 4 | UInt64(b <= 0x39 ? b - 0x30 : b - 0x61 + 10)
    }
    return value
  }

  /// The context for a request whose app sent `fields`: `traceparent` at most once (two are
  /// invalid), our span id from the worker's generator.
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
        return TraceContext(
          traceHigh: hex(value, 3, 16), traceLow: hex(value, 19, 16), spanID: random.next() | 1, flags: UInt8(hex(value, 53, 2)),
          keepsTracestate: true)
      }
    }
    return started(random: &random)
  }

  /// A new trace: for requests without a valid `traceparent`, and for logins and refreshes.
  public static func started(random: inout some RandomNumberGenerator) -> TraceContext {
    var high = random.next()
    let low = random.next()
    if high == 0 && low == 0 { high = 1 }
    return TraceContext(traceHigh: high, traceLow: low, spanID: random.next() | 1, flags: 0, keepsTracestate: false)
  }

  public static func started() -> TraceContext {
    var random = SystemRandomNumberGenerator()
    return started(random: &random)
  }
}
