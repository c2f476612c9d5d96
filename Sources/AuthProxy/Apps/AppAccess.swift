/// The worker's look at who called and what they may call (issue 21, points 1 and 2), after
/// `RequestPolicy`: the app is known by the key it sends (`Proxy-Authorization: Bearer <key>`,
/// compared on its SHA-256 in constant time) or by its uid on a Unix-socket listener; then
/// `--allow-route` and the app's own routes must both allow the call. A value: the control
/// thread sends a new one when the apps file changes.
public struct AppAccess: Sendable, Equatable {
  /// nil without `--apps-file`: no app is identified and no 407 is given.
  public var table: AppTable?
  /// nil without `--allow-route`: everything under `--api-prefix`.
  public var global: RouteSet?

  public init(table: AppTable?, global: RouteSet?) {
    self.table = table
    self.global = global
  }

  /// Nothing to check: no apps file and no `--allow-route`.
  public var isInactive: Bool { table == nil && global == nil }

  public enum Verdict: Sendable, Equatable {
    /// Forward; `app` is nil when there is no apps file.
    case allowed(app: AppRule?)
    /// Answer with `error`; `app` is the caller when it was identified.
    case refused(ProxyError, app: String?)
  }

  /// The verdict on one request. `proxyAuthorization` is the app's `Proxy-Authorization` value
  /// (never logged), `peerUID` the uid of a Unix-socket peer.
  public func check(method: String, target: String, proxyAuthorization: String?, peerUID: UInt32?) -> Verdict {
    var app: AppRule?
    if let table {
      guard let found = table.identify(proxyAuthorization: proxyAuthorization, peerUID: peerUID) else {
        return .refused(.proxyAuthRequired(presented: proxyAuthorization != nil), app: nil)
      }
      app = found
    }
    let sets = [global, app?.routes].compactMap { $0 }
    guard !sets.isEmpty else { return .allowed(app: app) }
    let path = AccessLogEntry.path(of: target)
    let normal = RequestPolicy.normalized(path.utf8)
    for set in sets where !set.allows(method: method, normalizedPath: normal) {
      return .refused(set.refusal(method: method, path: path), app: app?.name)
    }
    return .allowed(app: app)
  }
}

extension AppTable {
  /// The app that sent `proxyAuthorization` (`Bearer <key>`), else the one whose uid is
  /// `peerUID`. A key that is sent must match: a wrong key is not rescued by the uid.
  public func identify(proxyAuthorization: String?, peerUID: UInt32?) -> AppRule? {
    if let proxyAuthorization {
      guard let key = AppTable.bearerKey(proxyAuthorization) else { return nil }
      let digest = SHA256Hasher.hash(key)
      var match: AppRule?
      // Every app's hash is compared whole, whatever matched before.
      for app in apps {
        guard let expected = app.keySHA256 else { continue }
        if AppTable.constantTimeEqual(expected, digest) && match == nil { match = app }
      }
      return match
    }
    if let peerUID { return apps.first { $0.uid == peerUID } }
    return nil
  }

  /// The key of `Bearer <key>` (scheme case-insensitive), as bytes.
  static func bearerKey(_ value: String) -> [UInt8]? {
    let bytes = Array(value.utf8)
    let scheme = Array("bearer ".utf8)
    guard bytes.count > scheme.count, zip(bytes, scheme).allSatisfy({ HTTPBytes.lowercased($0) == $1 }) else { return nil }
    let key = bytes[scheme.count...].drop { $0 == 0x20 || $0 == 0x09 }
    let trimmed = Array(key.reversed().drop { $0 == 0x20 || $0 == 0x09 }.reversed())
    return trimmed.isEmpty ? nil : trimmed
  }

  /// Equal bytes, in a time that depends on the lengths only.
  static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for i in 0..<a.count { difference |= a[i] ^ b[i] }
    return difference == 0
  }
}

extension ProxyError {
  /// 407: `--apps-file` is set and the request came from no app it names.
  public static func proxyAuthRequired(presented: Bool) -> ProxyError {
    var error = ProxyError(
      status: 407, code: "proxy_auth_required",
      message: presented
        ? "the Proxy-Authorization key is not one of --apps-file's apps"
        : "this proxy serves only the apps of --apps-file: send Proxy-Authorization: Bearer <the app's key>")
    error.challenge = #"Bearer realm="authproxy""#
    return error
  }
}
