/// One field line, `name ":" OWS value OWS` (RFC 9112 §5), its line ending removed: the one
/// reader of a whole field line for both directions. The response parser reads every upstream
/// field line with `read`, which checks each byte; `RequestHead` splits the app's lines with
/// `split`, the framer having checked each of their bytes as they arrived (it must judge a
/// request before its line is whole: limits, timeouts, early refusal), with the same byte
/// classes (`HTTPBytes`).
struct FieldLine {
  /// Where the colon is (the name is everything before it), and the value without its OWS:
  /// indices of the line read or split.
  let colon: Int
  let valueStart: Int
  let valueEnd: Int

  enum Problem: Error {
    case obsoleteLineFolding, missingColon, emptyName, whitespaceBeforeColon, invalidName, invalidValue
  }

  /// The line checked byte by byte: a token name right before the colon, a value of field bytes.
  @inline(__always)
  static func read(_ line: UnsafeRawBufferPointer) throws(Problem) -> FieldLine {
    guard let first = line.first else { throw .missingColon }
    if HTTPBytes.isOWS(first) { throw .obsoleteLineFolding }
    var colon = 0
    while colon < line.count && HTTPBytes.isTchar(line[colon]) { colon += 1 }
    guard colon < line.count else { throw .missingColon }
    switch line[colon] {
    case HTTPBytes.colon: if colon == 0 { throw .emptyName }
    case HTTPBytes.sp, HTTPBytes.htab: throw .whitespaceBeforeColon
    default: throw .invalidName
    }
    let split = trimmed(line, colon: colon)
    for k in split.valueStart..<split.valueEnd where !HTTPBytes.isFieldByte(line[k]) { throw .invalidValue }
    return split
  }

  /// The line split at its first colon, for bytes already checked; nil without a colon.
  static func split<Line: RandomAccessCollection<UInt8>>(_ line: Line) -> FieldLine? where Line.Index == Int {
    guard let colon = line.firstIndex(of: HTTPBytes.colon) else { return nil }
    return trimmed(line, colon: colon)
  }

  @inline(__always)
  private static func trimmed<Line: RandomAccessCollection<UInt8>>(_ line: Line, colon: Int) -> FieldLine where Line.Index == Int {
    var start = colon + 1
    var end = line.endIndex
    while start < end && HTTPBytes.isOWS(line[start]) { start += 1 }
    while end > start && HTTPBytes.isOWS(line[end - 1]) { end -= 1 }
    return FieldLine(colon: colon, valueStart: start, valueEnd: end)
  }
}
