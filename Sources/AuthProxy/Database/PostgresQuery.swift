import CPostgres
import CShims
import Glibc

/// One parameterised query of one text column over libpq's non-blocking API, with hard
/// deadlines: `PQconnectStartParams`/`PQconnectPoll` and `PQsendQueryParams`/`PQconsumeInput`,
/// each wait a `poll(2)` bounded by what is left of the deadline. libpq's own `connect_timeout`
/// applies only to its blocking calls, and a stalled server would hold a blocking
/// `PQexecParams` for ever. Blocking for at most the two timeouts: it runs on a thread that may
/// wait (start-up, or the control loop's loader thread), never on an event loop.
///
/// The unsafe part of the `db:` source for PostgreSQL: the connection is created and finished
/// here, and no libpq pointer leaves this type.
enum PostgresQuery {
  /// `parameters` are libpq connection keywords in order; later ones override earlier ones, so
  /// `dbname` holding the URL comes first (libpq expands it) and the enforced settings after it.
  static func fetchOne(
    connection parameters: [(String, String)], sql: String, argument: String, connectTimeout: Double, queryTimeout: Double
  ) -> Result<DatabaseRow, DatabaseFailure> {
    if let missing = loadDatabaseLibrary({ ap_pq_load($0, $1) }) { return .failure(missing) }
    let connectDeadline = Deadline(after: connectTimeout)
    let keys = ConnectionKeywords(parameters.map(\.0))
    let values = ConnectionKeywords(parameters.map(\.1))
    defer {
      keys.free()
      values.free()  // wiped first: a password may be among them
    }
    guard let connection = ap_PQconnectStartParams(keys.pointers, values.pointers, 1) else {
      return .failure(DatabaseFailure(.unreachable, "libpq could not allocate a connection"))
    }
    defer { ap_PQfinish(connection) }
    if ap_PQstatus(connection) == CONNECTION_BAD { return .failure(classifyConnectFailure(errorText(connection))) }
    // CONNECTION_BAD above; from here PQconnectPoll says what to wait for (the socket may change
    // between attempts when the URL names several hosts, so it is asked for each time).
    var state = PGRES_POLLING_WRITING
    while state != PGRES_POLLING_OK {
      switch state {
      case PGRES_POLLING_FAILED:
        return .failure(classifyConnectFailure(errorText(connection)))
      case PGRES_POLLING_READING, PGRES_POLLING_WRITING:
        let events = state == PGRES_POLLING_READING ? Int16(POLLIN) : Int16(POLLOUT)
        guard wait(ap_PQsocket(connection), events, until: connectDeadline) else {
          return .failure(DatabaseFailure(.unreachable, "no connection within \(formatSeconds(connectTimeout))"))
        }
      default:
        break
      }
      state = ap_PQconnectPoll(connection)
    }
    return query(connection, sql: sql, argument: argument, deadline: Deadline(after: queryTimeout), timeout: queryTimeout)
  }

  private static func query(_ connection: OpaquePointer, sql: String, argument: String, deadline: Deadline, timeout: Double)
    -> Result<DatabaseRow, DatabaseFailure>
  {
    let timedOut = DatabaseFailure(.unreachable, "no answer to the query within \(formatSeconds(timeout))")
    guard ap_PQsetnonblocking(connection, 1) == 0 else { return .failure(DatabaseFailure(.query, errorText(connection))) }
    // One text parameter, types inferred by the server: `id = $1` takes the id column's type.
    let sent = argument.withCString { value in
      var parameter: UnsafePointer<CChar>? = value
      return ap_PQsendQueryParams(connection, sql, 1, nil, &parameter, nil, nil, 0)
    }
    guard sent == 1 else { return .failure(DatabaseFailure(.unreachable, errorText(connection))) }
    while true {
      let flushed = ap_PQflush(connection)
      if flushed == 0 { break }
      guard flushed == 1, wait(ap_PQsocket(connection), Int16(POLLOUT), until: deadline) else {
        return .failure(flushed == 1 ? timedOut : DatabaseFailure(.unreachable, errorText(connection)))
      }
    }
    var row = DatabaseRow.none
    var failure: DatabaseFailure?
    var sawResult = false
    while true {
      while ap_PQisBusy(connection) == 1 {
        guard wait(ap_PQsocket(connection), Int16(POLLIN), until: deadline) else { return .failure(timedOut) }
        guard ap_PQconsumeInput(connection) == 1 else { return .failure(DatabaseFailure(.unreachable, errorText(connection))) }
      }
      guard let result = ap_PQgetResult(connection) else { break }
      defer { ap_PQclear(result) }
      guard !sawResult else { continue }
      sawResult = true
      switch ap_PQresultStatus(result) {
      case PGRES_TUPLES_OK:
        let count = ap_PQntuples(result)
        if count > 1 {
          row = .several
        } else if count == 1 {
          row = .value(ap_PQgetisnull(result, 0, 0) == 1 ? "" : text(of: result))
        }
      default:
        failure = DatabaseFailure(.query, ap_PQresultErrorMessage(result).map { String(cString: $0) }?.trimmingASCIIWhitespace() ?? "")
      }
    }
    if let failure { return .failure(failure) }
    return sawResult ? .success(row) : .failure(DatabaseFailure(.unreachable, errorText(connection)))
  }

  /// The value as text; a `bytea` column comes in libpq's hex form (`\x…`) and is decoded, so
  /// the sealed text may live in either type.
  private static func text(of result: OpaquePointer) -> String {
    let length = Int(ap_PQgetlength(result, 0, 0))
    guard let raw = ap_PQgetvalue(result, 0, 0) else { return "" }
    let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(raw).assumingMemoryBound(to: UInt8.self), count: length)
    if ap_PQftype(result, 0) == 17, length >= 2, bytes[0] == UInt8(ascii: "\\"), bytes[1] == UInt8(ascii: "x") {
      return String(decoding: hexDecoded(bytes.dropFirst(2)), as: UTF8.self)
    }
    return String(decoding: bytes, as: UTF8.self)
  }

  private static func hexDecoded(_ hex: Slice<UnsafeBufferPointer<UInt8>>) -> [UInt8] {
    func nibble(_ c: UInt8) -> UInt8? {
      switch c {
      case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
      case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
      case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
      default: nil
      }
    }
    var out: [UInt8] = []
    var index = hex.startIndex
    while index + 1 < hex.endIndex, let high = nibble(hex[index]), let low = nibble(hex[index + 1]) {
      out.append(high << 4 | low)
      index += 2
    }
    return out
  }

  private static func errorText(_ connection: OpaquePointer) -> String {
    ap_PQerrorMessage(connection).map { String(cString: $0) }?.trimmingASCIIWhitespace() ?? "unknown libpq error"
  }

  /// libpq reports connection failures as text only (no SQLSTATE before the session exists);
  /// these phrases are libpq's and the server's own, stable across releases, in English unless
  /// the server runs with another lc_messages (then the failure reads as unreachable, the
  /// cautious side: it is retried, and named with libpq's text).
  static func classifyConnectFailure(_ text: String) -> DatabaseFailure {
    let lower = text.lowercased()
    if lower.contains("server does not support ssl") { return DatabaseFailure(.noTLS, text) }
    if lower.contains("certificate") || lower.contains("ssl error") || lower.contains("does not match host name") {
      return DatabaseFailure(.untrusted, text)
    }
    for phrase in [
      "password authentication failed", "no password supplied", "authentication failed", "pg_hba.conf",
      "does not exist", "permission denied",
    ] where lower.contains(phrase) {
      return DatabaseFailure(.refused, text)
    }
    return DatabaseFailure(.unreachable, text)
  }
}

/// C strings for libpq's keyword and value arrays, NULL-terminated; `free` wipes each before
/// releasing it (a password may be among them).
struct ConnectionKeywords {
  let pointers: [UnsafePointer<CChar>?]

  init(_ strings: [String]) {
    pointers = strings.map { UnsafePointer(strdup($0)) } + [nil]
  }

  func free() {
    for case let pointer? in pointers {
      let mutable = UnsafeMutablePointer(mutating: pointer)
      memset(mutable, 0, strlen(pointer))
      Glibc.free(mutable)
    }
  }
}

/// A point on the monotonic clock a blocking wait must not pass.
struct Deadline {
  private let end: Double

  init(after seconds: Double) { end = Deadline.now() + seconds }

  var remainingMilliseconds: Int32 { Int32(max(0, min(Double(Int32.max), ((end - Deadline.now()) * 1000).rounded(.up)))) }

  static func now() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
  }
}

/// Waits until `socket` is ready for `events` or the deadline passes; false on the deadline (or
/// a socket that is not one, which the caller's next library call then reports).
func wait(_ socket: Int32, _ events: Int16, until deadline: Deadline) -> Bool {
  guard socket >= 0 else { return false }
  var descriptor = pollfd(fd: socket, events: events, revents: 0)
  while true {
    let left = deadline.remainingMilliseconds
    guard left > 0 else { return false }
    let ready = poll(&descriptor, 1, left)
    if ready > 0 { return true }
    if ready == 0 { return false }
    if errno != EINTR { return true }
  }
}

func formatSeconds(_ seconds: Double) -> String {
  seconds == seconds.rounded() ? "\(Int(seconds))s" : "\(seconds)s"
}
