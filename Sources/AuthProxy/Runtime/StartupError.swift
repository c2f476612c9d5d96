import Dispatch
import Glibc
import Logging
import Synchronization

/// Why the proxy could not start: a message for the operator and the exit code of SPEC §8.
public struct StartupError: Error, Sendable, CustomStringConvertible {
  public let description: String
  public let exitCode: Int32
  public init(_ description: String, exitCode: Int32) {
    self.description = description
    self.exitCode = exitCode
  }
}

extension StartupError {
  static func badCAFile(_ tls: UpstreamTLS, _ error: EventError) -> StartupError {
    let fix =
      tls.caFile == nil ? "install the system CA bundle (ca-certificates) or give --ca-file" : "give --ca-file a file of PEM certificates"
    return StartupError("--ca-file: \(error.description): \(fix)", exitCode: 64)
  }

  static func badClientCertificate(_ error: EventError) -> StartupError {
    StartupError("--client-cert/--client-key: \(error.description); give a PEM certificate and its matching PEM private key", exitCode: 64)
  }

  /// The TLS files of `tls` (`--ca-file`, `--client-cert`, `--client-key`) loaded once, as
  /// `serve` does at start: nil when they load, else the usage error naming the flag.
  public static func checkTLSFiles(_ tls: UpstreamTLS) -> StartupError? {
    let trust: TrustStore
    do {
      trust = try TrustStore(caFile: tls.caFile)
    } catch {
      return badCAFile(tls, error)
    }
    do {
      _ = try TLSClientContext(tls, trust: trust)
    } catch {
      return badClientCertificate(error)
    }
    return nil
  }

  /// A Unix-socket listener that could not be bound: 69 when another process listens there,
  /// 64 when the path cannot be used.
  static func cannotListenUnix(path: String, _ error: EventError) -> StartupError {
    StartupError(
      "--listen unix:\(path): \(error.description)", exitCode: error.code == EADDRINUSE ? 69 : 64)
  }

  /// A listener that could not be bound: 69 when the port is taken (the host is busy, the flag
  /// may be right), 64 when the address cannot be used here at all.
  static func cannotListen(flag: String, at address: HostPort, _ error: EventError) -> StartupError {
    switch error.code {
    case EADDRINUSE:
      StartupError(
        "\(flag) \(address): the address is already in use (another process listens there); stop it or choose another port with \(flag)",
        exitCode: 69)
    case EACCES:
      StartupError(
        "\(flag) \(address): permission denied (ports below 1024 need CAP_NET_BIND_SERVICE); choose a port of 1024 or more with \(flag)",
        exitCode: 64)
    case EINVAL:
      StartupError("\(flag) \(address): \(error.description); give an IP address (or localhost), like 127.0.0.1:8080", exitCode: 64)
    case EADDRNOTAVAIL:
      StartupError("\(flag) \(address): no interface of this host has that address; give one of its addresses with \(flag)", exitCode: 64)
    default:
      StartupError("\(flag) \(address): \(error.description)", exitCode: 69)
    }
  }
}
