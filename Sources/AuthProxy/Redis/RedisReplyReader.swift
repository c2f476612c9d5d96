import CHiredis

/// A Redis reply, copied out of hiredis's memory.
public enum RedisReply: Sendable, Equatable {
  case string([UInt8])
  case status(String)
  case integer(Int)
  case null
  case array([RedisReply])
  case error(String)
}

/// hiredis's RESP parser (`redisReader`), the one part of hiredis the proxy keeps: the bytes come
/// from our own sockets on the loop. Replies are copied into `RedisReply` values and freed at once.
final class RedisReplyReader {
  struct ProtocolError: Error { let message: String }

  private let reader: UnsafeMutablePointer<redisReader>?

  init() { reader = redisReaderCreate() }

  deinit { if let reader { redisReaderFree(reader) } }

  /// Hands received bytes to the parser (it copies them).
  func feed(_ bytes: UnsafeRawBufferPointer) -> Bool {
    guard let reader, let base = bytes.baseAddress else { return reader != nil }
    return redisReaderFeed(reader, base.assumingMemoryBound(to: CChar.self), bytes.count) == REDIS_OK
  }

  /// The next complete reply, nil when more bytes are needed.
  func next() throws(ProtocolError) -> RedisReply? {
    guard let reader else { throw ProtocolError(message: "out of memory") }
    var raw: UnsafeMutableRawPointer?
    guard redisReaderGetReply(reader, &raw) == REDIS_OK else {
      let message = withUnsafeBytes(of: reader.pointee.errstr) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
      throw ProtocolError(message: message)
    }
    guard let raw else { return nil }
    // The reply object is ours (default functions): copied, then freed.
    defer { freeReplyObject(raw) }
    return RedisReplyReader.copy(raw.assumingMemoryBound(to: redisReply.self))
  }

  /// RESP for one command: an array of bulk strings (binary-safe).
  static func encode(_ arguments: [[UInt8]]) -> [UInt8] {
    var out = Array("*\(arguments.count)\r\n".utf8)
    for argument in arguments {
      out += Array("$\(argument.count)\r\n".utf8)
      out += argument
      out += [0x0D, 0x0A]
    }
    return out
  }

  private static func copy(_ raw: UnsafeMutablePointer<redisReply>) -> RedisReply {
    let reply = raw.pointee
    func text() -> String {
      guard let str = reply.str else { return "" }
      return String(decoding: UnsafeRawBufferPointer(start: str, count: reply.len), as: UTF8.self)
    }
    switch reply.type {
    case REDIS_REPLY_STRING:
      guard let str = reply.str else { return .string([]) }
      return .string(Array(UnsafeRawBufferPointer(start: str, count: reply.len)))
    case REDIS_REPLY_STATUS: return .status(text())
    case REDIS_REPLY_ERROR: return .error(text())
    case REDIS_REPLY_INTEGER: return .integer(Int(reply.integer))
    case REDIS_REPLY_ARRAY:
      var items: [RedisReply] = []
      for index in 0..<reply.elements {
        if let element = reply.element[index] { items.append(copy(element)) }
      }
      return .array(items)
    default: return .null
    }
  }
}
