import Glibc

/// An IPv4 or IPv6 network (`--allow-cidr`), matched against client addresses.
public struct CIDR: Sendable, Equatable, CustomStringConvertible {
  /// 4 or 16 bytes.
  let network: [UInt8]
  let prefix: Int

  public static func parse(_ text: String) -> CIDR? {
    let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
    guard let address = CIDR.bytes(of: String(parts[0])) else { return nil }
    let bits = address.count * 8
    var prefix = bits
    if parts.count == 2 {
      guard parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), let given = Int(parts[1]), (0...bits).contains(given) else {
        return nil
      }
      prefix = given
    }
    return CIDR(network: CIDR.masked(address, prefix: prefix), prefix: prefix)
  }

  /// The list form of the flag: comma-separated networks.
  public static func parseList(_ text: String) -> [CIDR]? {
    let items = text.split(separator: ",").map { $0.trimmingSpaces() }.filter { !$0.isEmpty }
    let parsed = items.compactMap(CIDR.parse)
    return parsed.count == items.count && !parsed.isEmpty ? parsed : nil
  }

  public func contains(_ address: String) -> Bool {
    guard var bytes = CIDR.bytes(of: address) else { return false }
    // An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d.
    if bytes.count == 16 && network.count == 4 && bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
      bytes = Array(bytes[12...])
    }
    guard bytes.count == network.count else { return false }
    return CIDR.masked(bytes, prefix: prefix) == network
  }

  public var description: String {
    var text = [CChar](repeating: 0, count: 64)
    network.withUnsafeBytes { raw in
      _ = inet_ntop(network.count == 4 ? AF_INET : AF_INET6, raw.baseAddress, &text, socklen_t(text.count))
    }
    return String(cBuffer: text) + "/\(prefix)"
  }

  static func bytes(of address: String) -> [UInt8]? {
    var v4 = in_addr()
    if inet_pton(AF_INET, address, &v4) == 1 { return withUnsafeBytes(of: v4) { Array($0) } }
    var v6 = in6_addr()
    if inet_pton(AF_INET6, address, &v6) == 1 { return withUnsafeBytes(of: v6) { Array($0) } }
    return nil
  }

  static func masked(_ bytes: [UInt8], prefix: Int) -> [UInt8] {
    bytes.enumerated().map { index, byte in
      let keep = max(0, min(8, prefix - index * 8))
      return keep == 8 ? byte : byte & UInt8(truncatingIfNeeded: 0xFF << (8 - keep))
    }
  }
}
