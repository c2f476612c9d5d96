import Glibc

/// Parses the units of SPEC §2: durations `500ms`, `30s`, `5m`, `1h` and sizes `512KiB`, `10MiB`.
public enum Units {
  /// Seconds, or nil when `text` is not a duration. A bare number is seconds.
  public static func duration(_ text: String) -> Double? {
    let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
    for (suffix, scale) in units where text.hasSuffix(suffix) {
      let number = text.dropLast(suffix.count)
      guard let value = Double(number), value >= 0, value.isFinite, !number.hasPrefix("+") else { return nil }
      return value * scale
    }
    guard let value = Double(text), value >= 0, value.isFinite, !text.hasPrefix("+") else { return nil }
    return value
  }

  /// Bytes, or nil when `text` is not a size. A bare number is bytes.
  public static func size(_ text: String) -> Int? {
    let units: [(String, Int)] = [
      ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("KB", 1000), ("MB", 1_000_000), ("GB", 1_000_000_000),
      ("B", 1),
    ]
    guard text.first?.isASCII == true, text.first?.isNumber == true else { return nil }
    for (suffix, scale) in units where text.hasSuffix(suffix) {
      guard let value = Int(text.dropLast(suffix.count)), value >= 0 else { return nil }
      let (product, overflow) = value.multipliedReportingOverflow(by: scale)
      return overflow ? nil : product
    }
    guard let value = Int(text), value >= 0 else { return nil }
    return value
  }
}

/// One reason a configuration value is refused.
public struct ConfigProblem: Error, Sendable, Equatable, CustomStringConvertible {
  public let description: String
  public init(_ description: String) { self.description = description }
}

extension String {
  /// A small kernel file (cgroup, proc), read whole; nil when absent.
  init?(cgroupFile path: String) throws {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 256)
    let n = read(fd, &buffer, buffer.count)
    guard n > 0 else { return nil }
    self = String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(inWhitespace: ())
  }

  fileprivate func trimmingCharacters(inWhitespace: Void) -> String {
    String(self[...].drop { $0 == " " || $0 == "\n" }.reversed().drop { $0 == " " || $0 == "\n" }.reversed())
  }
}
