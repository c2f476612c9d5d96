// swift-tools-version:6.0
import PackageDescription

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
    // System libraries: a module map and one shim header each; the module maps do the linking.
    .systemLibrary(
      name: "CEvent", pkgConfig: "libevent",
      providers: [.apt(["libevent-dev"])]),
    .systemLibrary(
      name: "CCurl", pkgConfig: "libcurl",
      providers: [.apt(["libcurl4-openssl-dev"])]),
    .systemLibrary(
      name: "COpenSSL", pkgConfig: "openssl",
      providers: [.apt(["libssl-dev"])]),
    // No pkgConfig: hiredis's .pc adds -D_FILE_OFFSET_BITS=64, which SwiftPM refuses; the
    // headers are in the default include path.
    .systemLibrary(name: "CHiredis", providers: [.apt(["libhiredis-dev"])]),
    // The few C functions Swift cannot call directly (variadics, macros, TLS set-up, PKI).
    .target(
      name: "CShims", dependencies: ["CEvent", "CCurl", "COpenSSL", "CHiredis"],
      linkerSettings: [
        .linkedLibrary("event"), .linkedLibrary("event_openssl"), .linkedLibrary("curl"),
        .linkedLibrary("ssl"), .linkedLibrary("crypto"), .linkedLibrary("hiredis"),
      ]),
    .target(
      name: "AuthProxy",
      dependencies: [
        "CShims", "CEvent", "CCurl", "COpenSSL", "CHiredis",
        .product(name: "Logging", package: "swift-log"),
      ]),
    .target(name: "SandboxAPI", dependencies: ["AuthProxy"]),
    .executableTarget(
      name: "authproxy",
      dependencies: [
        "AuthProxy", "SandboxAPI",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
      ]),
    .testTarget(name: "AuthProxyTests", dependencies: ["AuthProxy"]),
    .testTarget(
      name: "IntegrationTests",
      dependencies: ["AuthProxy", "SandboxAPI", "authproxy"]),
  ]
)
