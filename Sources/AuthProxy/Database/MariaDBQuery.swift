import CMariaDB
import CShims
import Glibc

/// One parameterised query of one text column over MariaDB Connector/C (MySQL and MariaDB
/// servers): a prepared statement with the id bound as a string, never spliced into the SQL.
/// Connector/C is blocking; its connect, read and write timeouts bound each step, and it runs on
/// a thread that may wait (start-up, or the control loop's loader thread), never on an event loop.
///
/// The unsafe part of the `db:` source for MySQL/MariaDB: the handle, the statement and the bind
/// buffers live and die in `fetchOne`, and no Connector/C pointer leaves it. Option files
/// (~/.my.cnf) are not read: their settings could turn the TLS verification off.
enum MariaDBQuery {
  static func fetchOne(
    url: DatabaseURL, password: Secret?, caFile: String, sql: String, argument: String, timeout: Double
  ) -> Result<DatabaseRow, DatabaseFailure> {
    if let missing = loadDatabaseLibrary({ ap_mysql_load($0, $1) }) { return .failure(missing) }
    guard let handle = ap_mysql_init(nil) else { return .failure(DatabaseFailure(.unreachable, "Connector/C could not allocate a handle")) }
    defer { ap_mysql_close(handle) }
    var seconds = UInt32(max(1, timeout.rounded(.up)))
    ap_mysql_options(handle, MYSQL_OPT_CONNECT_TIMEOUT, &seconds)
    ap_mysql_options(handle, MYSQL_OPT_READ_TIMEOUT, &seconds)
    ap_mysql_options(handle, MYSQL_OPT_WRITE_TIMEOUT, &seconds)
    if url.transport == .verifiedTLS {
      // TLS required (no fallback to plain), the chain verified against caFile and the
      // certificate's name against the host.
      var on: my_bool = 1
      ap_mysql_options(handle, MYSQL_OPT_SSL_ENFORCE, &on)
      ap_mysql_options(handle, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &on)
      _ = caFile.withCString { ap_mysql_options(handle, MYSQL_OPT_SSL_CA, $0) }
    }
    let host = url.socket == nil ? url.hosts.first : "localhost"
    if url.socket == nil, host != nil {
      // Connector/C reads the host "localhost" as its Unix socket: a host in the URL means TCP.
      var tcp = MYSQL_PROTOCOL_TCP.rawValue
      ap_mysql_options(handle, MYSQL_OPT_PROTOCOL, &tcp)
    }
    let connected = withOptionalCString(host) { host in
      withOptionalCString(url.user) { user in
        withOptionalCString(password?.reveal) { password in
          withOptionalCString(url.database) { database in
            withOptionalCString(url.socket) { socket in
              ap_mysql_real_connect(handle, host, user, password, database, UInt32(url.port ?? 0), socket, 0) != nil
            }
          }
        }
      }
    }
    guard connected else { return .failure(classify(ap_mysql_errno(handle), text(ap_mysql_error(handle)))) }
    guard let statement = ap_mysql_stmt_init(handle) else {
      return .failure(classify(ap_mysql_errno(handle), text(ap_mysql_error(handle))))
    }
    defer { ap_mysql_stmt_close(statement) }
    func failed() -> DatabaseFailure { classify(ap_mysql_stmt_errno(statement), text(ap_mysql_stmt_error(statement))) }
    guard ap_mysql_stmt_prepare(statement, sql, UInt(sql.utf8.count)) == 0 else { return .failure(failed()) }

    var parameterBytes = Array(argument.utf8)
    let executed = parameterBytes.withUnsafeMutableBytes { bytes -> Bool in
      var parameter = MYSQL_BIND()
      parameter.buffer_type = MYSQL_TYPE_STRING
      parameter.buffer = bytes.baseAddress
      parameter.buffer_length = UInt(bytes.count)
      return ap_mysql_stmt_bind_param(statement, &parameter) == 0 && ap_mysql_stmt_execute(statement) == 0
    }
    guard executed, ap_mysql_stmt_store_result(statement) == 0 else { return .failure(failed()) }
    let rows = ap_mysql_stmt_num_rows(statement)
    if rows == 0 { return .success(.none) }
    if rows > 1 { return .success(.several) }

    // First fetch with no buffer: it reports the value's length (MYSQL_DATA_TRUNCATED), then
    // the column is fetched into a buffer of that size.
    var length: UInt = 0
    var isNull: my_bool = 0
    var probe = MYSQL_BIND()
    probe.buffer_type = MYSQL_TYPE_STRING
    let fetched = withUnsafeMutablePointer(to: &length) { lengthPointer in
      withUnsafeMutablePointer(to: &isNull) { nullPointer in
        probe.length = lengthPointer
        probe.is_null = nullPointer
        return ap_mysql_stmt_bind_result(statement, &probe) == 0 ? ap_mysql_stmt_fetch(statement) : 1
      }
    }
    guard fetched == 0 || fetched == MYSQL_DATA_TRUNCATED else { return .failure(failed()) }
    if isNull != 0 || length == 0 { return .success(.value("")) }
    var value = [UInt8](repeating: 0, count: Int(length))
    let read = value.withUnsafeMutableBytes { bytes -> Int32 in
      var column = MYSQL_BIND()
      column.buffer_type = MYSQL_TYPE_STRING
      column.buffer = bytes.baseAddress
      column.buffer_length = UInt(bytes.count)
      return ap_mysql_stmt_fetch_column(statement, &column, 0, 0)
    }
    guard read == 0 else { return .failure(failed()) }
    return .success(.value(String(decoding: value, as: UTF8.self)))
  }

  /// Connector/C's and the server's error numbers (errmsg.h, mysqld_error.h) to what the source
  /// tells the operator.
  static func classify(_ code: UInt32, _ message: String) -> DatabaseFailure {
    switch code {
    case 2026:  // CR_SSL_CONNECTION_ERROR: no TLS offered, or the certificate failed
      let lower = message.lowercased()
      return DatabaseFailure(lower.contains("does not support") ? .noTLS : .untrusted, message)
    case 1044, 1045, 1049, 1698:  // db access denied, access denied, unknown database, no password plugin
      return DatabaseFailure(.refused, message)
    case 1046, 1054, 1142, 1146, 1064, 1292, 1366:  // no database, unknown column, denied, no table, syntax, conversions
      return DatabaseFailure(.query, message)
    case 2000..<3000:
      return DatabaseFailure(.unreachable, message)
    default:
      return DatabaseFailure(.query, message)
    }
  }

  private static func text(_ pointer: UnsafePointer<CChar>?) -> String {
    pointer.map { String(cString: $0) }?.trimmingASCIIWhitespace() ?? ""
  }
}

private func withOptionalCString<R>(_ string: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
  guard let string else { return body(nil) }
  return string.withCString(body)
}
