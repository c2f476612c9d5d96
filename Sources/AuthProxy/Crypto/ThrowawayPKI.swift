import COpenSSL
import CShims

/// A throw-away PKI written into a directory: `ca.pem`, `server.pem`, `server-key.pem`.
public enum ThrowawayPKI {
  public static func make(in directory: String, caName: String, days: Int = 30) throws(EventError) {
    var err = [CChar](repeating: 0, count: 256)
    guard ap_pki_make(directory, caName, Int32(days), &err, err.count) == 0 else {
      throw EventError(String(cBuffer: err))
    }
  }
}
