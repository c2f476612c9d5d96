import CShims
import Glibc
import Logging

/// The version `authproxy version` prints and the default User-Agent carries.
public enum AuthProxyVersion {
  public static let current = "0.1.0"
}
