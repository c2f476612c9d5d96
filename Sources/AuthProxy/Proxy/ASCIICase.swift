extension String {
  /// Equal to `lowercase` (lower-case ASCII) ignoring ASCII case, without building a lower-cased
  /// copy: header names are compared this way on every request.
  func equalsIgnoringASCIICase(_ lowercase: String) -> Bool {
    guard utf8.count == lowercase.utf8.count else { return false }
    return zip(utf8, lowercase.utf8).allSatisfy { a, b in (a &- 0x41 < 26 ? a | 0x20 : a) == b }
  }

  /// Starts with `lowercase` (lower-case ASCII), ignoring ASCII case.
  func hasPrefixIgnoringASCIICase(_ lowercase: String) -> Bool {
    guard utf8.count >= lowercase.utf8.count else { return false }
    return zip(utf8, lowercase.utf8).allSatisfy { a, b in (a &- 0x41 < 26 ? a | 0x20 : a) == b }
  }
}

extension Array where Element == (name: String, value: String) {
  /// Is there a header of this (lower-case) name?
  func hasHeader(_ lowercaseName: String) -> Bool { contains { $0.name.equalsIgnoringASCIICase(lowercaseName) } }
}
