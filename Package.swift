// swift-tools-version:6.0
import PackageDescription

// A plain package: no unsafe flags, nothing optional that changes what links. `swift build` and
// `swift test` work with a stock Swift 6 toolchain on any glibc Linux with the Debian/Ubuntu -dev
// packages (scripts/install-deps). The image's tuned link (static runtimes, an HTTP(S)-only
// libcurl, lld and a function order) is scripts/build-release.

let package = Package(
  name: "authproxy",
  products: [
    .executable(name: "authproxy", targets: ["authproxy"])
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
  ],
  targets: [
    // System libraries: a module map and one shim header each; the module maps do the linking
    // (except CPostgres and CMariaDB, below).
    // Debian's packages (scripts/install-deps: libevent-dev, libcurl4-openssl-dev, libssl-dev,
    // libhiredis-dev, libpq-dev, libmariadb-dev) put headers and libraries on the default paths, so no pkg-config (hiredis's
    // .pc adds -D_FILE_OFFSET_BITS=64, which SwiftPM refuses).
    .systemLibrary(name: "CEvent"),
    .systemLibrary(name: "CCurl"),
    .systemLibrary(name: "COpenSSL"),
    .systemLibrary(name: "CHiredis"),
    // The `db:` credential source's clients: libpq (libpq-dev) and MariaDB Connector/C
    // (libmariadb-dev), headers under /usr/include/postgresql and /usr/include/mariadb. Headers
    // only: CShims dlopens libpq.so.5 and libmariadb.so.3 on the first db: read (db_shims.c), so
    // the binary links neither and deployments without db: do not load them.
    .systemLibrary(name: "CPostgres"),
    .systemLibrary(name: "CMariaDB"),
    // The few C functions Swift cannot call directly (variadics, macros, TLS set-up, PKI), and the
    // db: source's client libraries loaded with dlopen (no link to libpq or libmariadb).
    .target(
      name: "CShims", dependencies: ["CEvent", "CCurl", "COpenSSL", "CHiredis", "CPostgres", "CMariaDB"],
      linkerSettings: [
        .linkedLibrary("event"), .linkedLibrary("event_openssl"), .linkedLibrary("curl"),
        .linkedLibrary("ssl"), .linkedLibrary("crypto"), .linkedLibrary("hiredis"),
      ]),
    .target(
      name: "AuthProxy",
      dependencies: [
        "CShims", "CEvent", "CCurl", "COpenSSL", "CHiredis", "CPostgres", "CMariaDB",
        .product(name: "Logging", package: "swift-log"),
      ]),
    .target(name: "SandboxAPI", dependencies: ["AuthProxy"]),
    .executableTarget(
      name: "authproxy",
      dependencies: [
        "AuthProxy", "SandboxAPI",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
      ],
      exclude: ["link-order.txt"]),
    // What both test targets share: the API's documented answers (Tests/Fixtures) and helpers.
    .target(
      name: "TestSupport",
      dependencies: ["AuthProxy", .product(name: "Logging", package: "swift-log")],
      path: "Tests/TestSupport"),
    .testTarget(name: "AuthProxyTests", dependencies: ["AuthProxy", "TestSupport"]),
    .testTarget(
      name: "IntegrationTests",
      dependencies: ["AuthProxy", "SandboxAPI", "authproxy", "TestSupport"]),
  ]
)
