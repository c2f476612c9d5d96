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
    /// The client library (libpq.so.5 or libmariadb.so.3, loaded on first use) is not installed
    /// or lacks a function: only installing it helps.
    case library
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

/// Loads a `db:` client library through one of CShims' `ap_*_load` functions (dlopen once,
/// thread-safe): nil when it is loaded, else a `.library` failure with the loader's text.
func loadDatabaseLibrary(_ load: (UnsafeMutablePointer<CChar>, Int) -> Int32) -> DatabaseFailure? {
  var message = [CChar](repeating: 0, count: 512)
  let status = message.withUnsafeMutableBufferPointer { load($0.baseAddress!, $0.count) }
  guard status != 0 else { return nil }
  return DatabaseFailure(.library, message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
}
