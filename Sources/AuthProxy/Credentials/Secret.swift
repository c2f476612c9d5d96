/// A password, token or key. Printing, interpolating or dumping one shows `<redacted>`;
/// only `reveal` gives the value, and only the code that must send it calls that.
public struct Secret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
  private let value: String

  public init(_ value: String) { self.value = value }

  /// The secret itself, for the one place that puts it on the wire.
  public var reveal: String { value }
  public var isEmpty: Bool { value.isEmpty }

  public var description: String { "<redacted>" }
  public var debugDescription: String { "<redacted>" }
  public var customMirror: Mirror { Mirror(self, children: []) }
}
