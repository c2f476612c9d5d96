// swift-tools-version:6.0
import PackageDescription

// Release layout (issue 8, idle memory). Our Swift and C code gets one section per function, and
// the linker (lld) puts the functions a running proxy executes first, in the order of
// Sources/authproxy/link-order.txt (`scripts/link-order` writes it from a callgrind run), so
// they share a few pages instead of being spread over the 10 MB text; relative relocations are
// packed (DT_RELR, glibc >= 2.36). A stale order file only costs memory: names it lists that no
// longer exist are skipped without a warning. With --static-swift-stdlib, the C++ runtime is
// linked statically too (Sources/authproxy/static-libstdc++ says how), and a release binary
// exports no symbols: the driver's -export-dynamic filled the dynamic symbol table with our
// 3,300 functions, which the loader searches first for every symbol of every library.
let functionSections: [SwiftSetting] = [.unsafeFlags(["-Xfrontend", "-function-sections"])]
let linkLayout: [LinkerSetting] = [
  .unsafeFlags([
    "-use-ld=lld",
    "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
    "-Xlinker", "--symbol-ordering-file=\(Context.packageDirectory)/Sources/authproxy/link-order.txt",
    "-Xlinker", "--no-warn-symbol-ordering",
    "-L", "\(Context.packageDirectory)/Sources/authproxy/static-libstdc++",
  ]),
  .unsafeFlags(["-Xlinker", "--no-export-dynamic"], .when(configuration: .release)),
]

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
    // Debian's packages (scripts/install-deps: libevent-dev, libcurl4-openssl-dev, libssl-dev,
    // libhiredis-dev) put headers and libraries on the default paths, so no pkg-config: SwiftPM
    // would put its -L/usr/lib/x86_64-linux-gnu ahead of .build-libcurl/lib (below). (hiredis's
    // .pc also adds -D_FILE_OFFSET_BITS=64, which SwiftPM refuses.)
    .systemLibrary(name: "CEvent"),
    .systemLibrary(name: "CCurl"),
    .systemLibrary(name: "COpenSSL"),
    .systemLibrary(name: "CHiredis"),
    // The few C functions Swift cannot call directly (variadics, macros, TLS set-up, PKI).
    // -lcurl finds the static HTTP(S)-only libcurl of scripts/build-libcurl in .build-libcurl/lib
    // when it has been built (install-deps does), else Debian's shared one.
    .target(
      name: "CShims", dependencies: ["CEvent", "CCurl", "COpenSSL", "CHiredis"],
      cSettings: [.unsafeFlags(["-ffunction-sections"])],
      linkerSettings: [
        .unsafeFlags(["-L", "\(Context.packageDirectory)/.build-libcurl/lib"]),
        .linkedLibrary("event"), .linkedLibrary("event_openssl"), .linkedLibrary("curl"),
        .linkedLibrary("ssl"), .linkedLibrary("crypto"), .linkedLibrary("hiredis"),
      ]),
    .target(
      name: "AuthProxy",
      dependencies: [
        "CShims", "CEvent", "CCurl", "COpenSSL", "CHiredis",
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: functionSections),
    .target(name: "SandboxAPI", dependencies: ["AuthProxy"], swiftSettings: functionSections),
    .executableTarget(
      name: "authproxy",
      dependencies: [
        "AuthProxy", "SandboxAPI",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
      ],
      exclude: ["link-order.txt", "static-libstdc++"],
      swiftSettings: functionSections,
      linkerSettings: linkLayout),
    // What both test targets share: the API's documented answers (Tests/Fixtures) and helpers.
    .target(name: "TestSupport", path: "Tests/TestSupport"),
    .testTarget(name: "AuthProxyTests", dependencies: ["AuthProxy", "TestSupport"]),
    .testTarget(
      name: "IntegrationTests",
      dependencies: ["AuthProxy", "SandboxAPI", "authproxy", "TestSupport"]),
  ]
)
