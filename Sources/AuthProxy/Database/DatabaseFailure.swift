/// Why a database read did not return a row, as the `db:` credential source needs to tell it:
/// whether retrying may help (the server is down or slow) or only a configuration change will.
/// `detail` is the client library's or server's own text; it never holds the password (neither
/// libpq nor Connector/C echoes one), and the source adds the cause and the fix around it.
struct DatabaseFailure: Error, Sendable, Equatable {
  enum Kind: Sendable, Equatable {
    /// Connection refused, host unknown, timed out, server shutting down: try again later.
    case unreachable
    /// The server refused the login (wrong password, unknown user, no access to the database).
    case refused
    /// The server offers no TLS where TLS is required.
    case noTLS
    /// TLS failed: the server's certificate is not trusted or does not name the host.
    case untrusted
    /// The query failed (no such table or column, a type mismatch, no permission).
    case query
  }

  let kind: Kind
  let detail: String

  init(_ kind: Kind, _ detail: String) {
    self.kind = kind
    self.detail = detail
  }
}

/// What one query of the credentials row found.
enum DatabaseRow: Sendable, Equatable {
  /// No row matched (no such id, or the row is not active).
  case none
  /// More than one row matched: the id is not unique.
  case several
  /// The column's value (NULL reads as an empty string).
  case value(String)
}
