/// Why the apps file was refused: the file and every problem, each naming the app and field.
public struct AppsFileError: Error, Sendable, Equatable, CustomStringConvertible {
  public let path: String
  public let problems: [String]
  public var description: String { "--apps-file \(path): " + problems.joined(separator: "; ") }
}
