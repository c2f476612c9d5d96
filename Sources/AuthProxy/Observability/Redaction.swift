/// Takes what may hold a secret out of text an operator sees (exit messages, the diagnostic
/// log): the user information, query and fragment of URLs, and known secret values. A value
/// that can hold a secret is never echoed whole; this is the net under that rule, for text
/// assembled elsewhere (a parser's message, a C library's error).
public enum Redaction {
  /// What replaces a secret.
  public static let mark = "<redacted>"

  /// `url` with its user information, query and fragment replaced: `https://<redacted>@host/path?<redacted>`.
  /// Text that is not a URL comes back with the same treatment wherever a `scheme://` occurs.
  public static func url(_ url: String) -> String { scrub(url) }

  /// `text` with every URL's user information, query and fragment replaced, and every
  /// occurrence of a `secrets` value (six characters or more: shorter ones would blank out
  /// ordinary words) replaced too.
  public static func scrub(_ text: String, secrets: [String] = []) -> String {
    var result = scrubURLs(text)
    for secret in secrets where secret.utf8.count >= 6 {
      result = result.replacingAll(secret, with: mark)
    }
    return result
  }

  /// Every `scheme://authority/path?query#fragment` in `text`, with the user information (up
  /// to the last `@` of the authority), the query and the fragment replaced.
  private static func scrubURLs(_ text: String) -> String {
    let bytes = Array(text.utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count)
    var i = 0
    let separator: [UInt8] = Array("://".utf8)
    func endsURL(_ byte: UInt8) -> Bool {
      byte <= 0x20 || byte == 0x22 || byte == 0x27 || byte == 0x3C || byte == 0x3E || byte == 0x60 || byte == 0x7F
    }
    while i < bytes.count {
      guard i + 3 <= bytes.count, Array(bytes[i..<(i + 3)]) == separator else {
        out.append(bytes[i])
        i += 1
        continue
      }
      out.append(contentsOf: separator)
      i += 3
      // The authority: up to /, ?, # or the end of the URL.
      var end = i
      while end < bytes.count, !endsURL(bytes[end]), bytes[end] != 0x2F, bytes[end] != 0x3F, bytes[end] != 0x23 { end += 1 }
      if let at = bytes[i..<end].lastIndex(of: 0x40) {
        out.append(contentsOf: mark.utf8)
        i = at
      }
      out.append(contentsOf: bytes[i..<end])
      i = end
      // The path as is; the query and fragment replaced.
      while i < bytes.count, !endsURL(bytes[i]) {
        if bytes[i] == 0x3F || bytes[i] == 0x23 {
          out.append(bytes[i])
          out.append(contentsOf: mark.utf8)
          i += 1
          while i < bytes.count, !endsURL(bytes[i]) { i += 1 }
          break
        }
        out.append(bytes[i])
        i += 1
      }
    }
    return String(decoding: out, as: UTF8.self)
  }
}

extension String {
  /// Every non-overlapping occurrence of `target` replaced (FoundationEssentials-free).
  fileprivate func replacingAll(_ target: String, with replacement: String) -> String {
    let bytes = Array(utf8)
    let needle = Array(target.utf8)
    guard !needle.isEmpty, bytes.count >= needle.count else { return self }
    var out: [UInt8] = []
    var i = 0
    while i < bytes.count {
      if i + needle.count <= bytes.count, bytes[i] == needle[0], Array(bytes[i..<(i + needle.count)]) == needle {
        out.append(contentsOf: replacement.utf8)
        i += needle.count
      } else {
        out.append(bytes[i])
        i += 1
      }
    }
    return String(decoding: out, as: UTF8.self)
  }
}
