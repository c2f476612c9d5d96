import AuthProxy
import Foundation
import SandboxAPI
import Testing
import TestSupport

/// Issue 17, points 4 and 5: the credentials watcher follows what operators and the kubelet
/// really do to a credentials file: rewrite it in place, fix its mode, swap a Secret volume's
/// `..data` symlink.
@Suite(.serialized) struct CredentialWatchTests {
  let demo = SandboxAPI.demoUsers[0]
  let rotated = SandboxAPI.demoUsers[1]

  private func json(_ user: SandboxUser) -> String { "{\"username\":\"\(user.username)\",\"password\":\"\(user.password)\"}\n" }

  private func fileLoader(_ path: String) -> CredentialLoader {
    CredentialLoader(watchedFile: path) { () throws(CredentialError) in try CredentialSource.load(.file(path: path), environment: [:]) }
  }

  private func write(_ text: String, to path: String, mode: mode_t) {
    #expect(FileManager.default.createFile(atPath: path, contents: Data(text.utf8)))
    #expect(chmod(path, mode) == 0)
  }

  private func rotationFailures(_ proxy: ProxyHarness) -> Int { proxy.logs.all.filter { $0.contains("rotation_failure") }.count }

  @Test func anInPlaceRewriteIsReadOnceCompleteAndIsNoFailedRotation() throws {
    let directory = temporaryDirectory("authproxy-watch")
    let path = directory + "/credentials.json"
    write(json(demo), to: path, mode: 0o600)
    let proxy = try ProxyHarness(loader: fileLoader(path))
    defer { proxy.stop() }
    #expect(eventually { (try? proxy.admin("/readyz").status) == 200 })

    // Truncate, write half, and leave it so until the watcher has seen the half file.
    let text = Array(json(rotated).utf8)
    let fd = open(path, O_WRONLY | O_TRUNC)
    #expect(fd >= 0)
    let half = text.count / 2
    #expect(text.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, half) } == half)
    #expect(eventually { proxy.logs.all.contains { $0.contains("the credentials file changed") } })
    // Then the rest (well within the watcher's 2 s settling interval).
    #expect(text.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + half, text.count - half) } == text.count - half)
    close(fd)

    #expect(eventually(timeout: 20) { proxy.logs.all.contains { $0.contains("same client") } }, "the complete file was rotated to")
    #expect(rotationFailures(proxy) == 0, "no failed rotation on the way")
    #expect(try proxy.get("/api/v1/echo").status == 200)
  }

  @Test func aModeFixAloneIsNoticedAndRotates() throws {
    let directory = temporaryDirectory("authproxy-watch")
    let path = directory + "/credentials.json"
    write(json(demo), to: path, mode: 0o600)
    let proxy = try ProxyHarness(loader: fileLoader(path))
    defer { proxy.stop() }
    #expect(eventually { (try? proxy.admin("/readyz").status) == 200 })

    // Replaced with a mode others can read: refused, with the fix.
    let staging = directory + "/.staging"
    write(json(rotated), to: staging, mode: 0o644)
    #expect(rename(staging, path) == 0)
    #expect(eventually(timeout: 20) { proxy.logs.all.contains { $0.contains("rotation_failure") && $0.contains("chmod 600") } })
    let loginsBefore = proxy.sandbox.counters.logins

    // The fix the message names, and nothing else: the watcher must see it.
    #expect(chmod(path, 0o600) == 0)
    #expect(eventually(timeout: 20) { proxy.logs.all.contains { $0.contains("same client") } })
    #expect(proxy.sandbox.counters.logins == loginsBefore + 1)
  }

  @Test(.enabled(if: geteuid() == 0, "needs root to give the file to another user"))
  func anOwnershipFixAloneIsNoticedAndRotates() throws {
    let directory = temporaryDirectory("authproxy-watch")
    let path = directory + "/credentials.json"
    write(json(demo), to: path, mode: 0o600)
    let proxy = try ProxyHarness(loader: fileLoader(path))
    defer { proxy.stop() }
    #expect(eventually { (try? proxy.admin("/readyz").status) == 200 })

    // Replaced by a file of another user: refused, naming chown.
    let staging = directory + "/.staging"
    write(json(rotated), to: staging, mode: 0o600)
    #expect(chown(staging, 4321, getegid()) == 0)
    #expect(rename(staging, path) == 0)
    #expect(eventually(timeout: 20) { proxy.logs.all.contains { $0.contains("rotation_failure") && $0.contains("chown") } })

    // The chown alone: the watcher sees it.
    #expect(chown(path, geteuid(), getegid()) == 0)
    #expect(eventually(timeout: 20) { proxy.logs.all.contains { $0.contains("same client") } })
  }

  /// The layout the kubelet makes for a Secret volume: a timestamped directory with the files,
  /// a `..data` symlink to it, and each file a symlink through `..data`; an update writes a new
  /// directory and renames a new `..data` over the old one (atomic), then removes the old one.
  @Test func aKubernetesSecretVolumeUpdateIsFollowed() throws {
    let volume = temporaryDirectory("authproxy-secret-volume")
    // What fsGroup and defaultMode: 0440 give: root-owned, group-readable by the process's
    // group. Not root: the owner-only form of the rule.
    let asRoot = geteuid() == 0
    func makeVersion(_ name: String, _ user: SandboxUser) {
      let version = volume + "/" + name
      #expect(mkdir(version, 0o755) == 0)
      write(json(user), to: version + "/credentials.json", mode: asRoot ? 0o440 : 0o400)
      if asRoot { #expect(chown(version + "/credentials.json", 0, getegid()) == 0) }
    }
    makeVersion("..2026_12_06_10_00_00.000000001", demo)
    #expect(symlink("..2026_12_06_10_00_00.000000001", volume + "/..data") == 0)
    #expect(symlink("..data/credentials.json", volume + "/credentials.json") == 0)

    let path = volume + "/credentials.json"
    let proxy = try ProxyHarness(loader: fileLoader(path))
    defer { proxy.stop() }
    #expect(eventually { (try? proxy.admin("/readyz").status) == 200 })
    #expect(proxy.sandbox.counters.logins == 1)

    makeVersion("..2026_12_06_11_00_00.000000002", rotated)
    #expect(symlink("..2026_12_06_11_00_00.000000002", volume + "/..data_tmp") == 0)
    #expect(rename(volume + "/..data_tmp", volume + "/..data") == 0)
    try FileManager.default.removeItem(atPath: volume + "/..2026_12_06_10_00_00.000000001")

    #expect(eventually(timeout: 20) { proxy.logs.all.contains { $0.contains("same client") } })
    #expect(proxy.sandbox.counters.logins == 2)
    #expect(rotationFailures(proxy) == 0)
    #expect(try proxy.get("/api/v1/echo").status == 200)
  }
}
