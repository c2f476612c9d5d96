import CShims
import Glibc
import Testing

@testable import AuthProxy

/// The `db:` source's client libraries are loaded with dlopen on first use, not linked (so
/// deployments without db: do not map them): the loaders, and what a failed load tells the user.
struct DatabaseLibraryTests {
  @Test func theLoadersFindBothLibrariesAndMayBeCalledAgain() {
    for _ in 0..<2 {
      #expect(loadDatabaseLibrary({ ap_pq_load($0, $1) }) == nil)
      #expect(loadDatabaseLibrary({ ap_mysql_load($0, $1) }) == nil)
    }
  }

  @Test func aFailedLoadIsUnreachableAndNamesThePackage() throws {
    let text = "cannot load libpq (libpq.so.5): libpq.so.5: cannot open shared object file"
    let failure = try #require(
      loadDatabaseLibrary { buffer, length in
        _ = text.withCString { strncpy(buffer, $0, length - 1) }
        return -1
      })
    #expect(failure == DatabaseFailure(.library, text))
    for (url, package) in [("postgres://db.example/app", "libpq5"), ("mysql://db.example/app", "libmariadb3")] {
      let settings = DatabaseSettings(url: try DatabaseURL.parse(url).get())
      let error = DatabaseSource.error(for: failure, settings: settings, spec: .database(id: "7"))
      #expect(error.kind == .unreachable)
      #expect(error.reason.contains(package) && error.reason.contains(text))
    }
  }
}
