import Foundation
import Glibc
import Testing

@testable import AuthProxy
import TestSupport

// MARK: - Builders

private let password = "fake-password-for-tests"
private let keyBase64 = Data(repeating: 0x42, count: 32).base64EncodedString()
private let otherKeyBase64 = Data(repeating: 0x24, count: 32).base64EncodedString()

/// Writes `text` to a new file with `mode` (set after writing, whatever the umask).
private func writeFile(_ text: String, mode: mode_t = 0o600, named name: String = "credentials.json") -> String {
  let path = temporaryDirectory("authproxy-credentials") + "/" + name
  _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
  chmod(path, mode)
  return path
}

private func setModificationTime(_ path: String, _ seconds: Int) {
  let times = [timespec(tv_sec: seconds, tv_nsec: 0), timespec(tv_sec: seconds, tv_nsec: 0)]
  utimensat(AT_FDCWD, path, times, 0)
}

private func json(username: String? = "integration", password: String? = password, rotatedAt: String? = nil) -> String {
  var members: [String] = []
  if let username { members.append(#""username":"\#(username)""#) }
  if let password { members.append(#""password":"\#(password)""#) }
  if let rotatedAt { members.append(#""rotated_at":"\#(rotatedAt)""#) }
  return "{" + members.joined(separator: ",") + "}"
}

private func sealed(_ text: String, keyBase64: String = keyBase64) throws -> String {
  try SealedCredentials.seal(plaintext: Array(text.utf8), key: EncryptionKey(base64: keyBase64))
}

private func loadError(_ spec: CredentialSpec, environment: [String: String] = [:]) -> CredentialError? {
  do throws(CredentialError) {
    _ = try CredentialSource.load(spec, environment: environment)
    return nil
  } catch {
    return error
  }
}

/// No secret of these tests may appear in an error.
private func isClean(_ error: CredentialError) -> Bool {
  var dumped = ""
  dump(error, to: &dumped)
  return [error.description, String(reflecting: error), dumped].allSatisfy {
    !$0.contains(password) && !$0.contains(keyBase64) && !$0.contains(otherKeyBase64)
  }
}

// MARK: - Specification

@Suite struct CredentialFileTests {

  // MARK: file:

  @Test(arguments: [0o600 as mode_t, 0o400])
  func readsAnOwnerOnlyFile(mode: mode_t) throws {
    let path = writeFile(json(), mode: mode)
    let credentials = try CredentialSource.load(.file(path: path), environment: [:])
    #expect(credentials.username == "integration")
    #expect(credentials.password.reveal == password)
  }

  @Test(arguments: [0o644 as mode_t, 0o604, 0o660, 0o700, 0o666])
  func refusesAFileOthersCanReadNamingItsModeAndTheFix(mode: mode_t) throws {
    let path = writeFile(json(), mode: mode)
    let error = try #require(loadError(.file(path: path)))
    #expect(error.kind == .invalid)
    #expect(error.description.contains(path))
    #expect(error.description.contains("0" + String(mode, radix: 8)))
    #expect(error.description.contains("chmod 600 \(path)"))
    #expect(isClean(error))
  }

  // MARK: the permission rule (issue 17: PostgreSQL's rule for its key file)

  @Test func theRuleAcceptsOwnerOnlyOrRootOwnedAndReadableByTheProcessGroup() {
    func problem(_ mode: mode_t, owner: uid_t, group: gid_t) -> String? {
      CredentialFile.permissionProblem(
        path: "/s/c.json", mode: mode, owner: owner, group: group, processUser: 1000, processGroups: [1000, 2000])
    }
    // Owner-only, owned by the process's user.
    #expect(problem(0o600, owner: 1000, group: 1000) == nil)
    #expect(problem(0o400, owner: 1000, group: 5) == nil)
    // Root-owned, readable by one of the process's groups (fsGroup is a supplementary group).
    #expect(problem(0o440, owner: 0, group: 2000) == nil)
    #expect(problem(0o640, owner: 0, group: 1000) == nil)
    #expect(problem(0o600, owner: 0, group: 1000) != nil, "root's own file is not readable by this process anyway")
    // Never: others can read, the group can write, group-readable but not root's, another user's.
    for mode: mode_t in [0o644, 0o604, 0o444, 0o660, 0o620, 0o700, 0o666] {
      #expect(problem(mode, owner: 0, group: 2000) != nil, "\(String(mode, radix: 8)) root-owned")
      #expect(problem(mode, owner: 1000, group: 1000) != nil, "\(String(mode, radix: 8)) own")
    }
    #expect(problem(0o640, owner: 1000, group: 1000) != nil, "group-readable only when root owns it")
    #expect(problem(0o440, owner: 0, group: 3000) != nil, "a group the process is not in")
    #expect(problem(0o600, owner: 1001, group: 1000) != nil, "another user's file")
  }

  @Test func aRefusalNamesTheRuleAndTheFixForItsCase() throws {
    func problem(_ mode: mode_t, owner: uid_t, group: gid_t) throws -> String {
      try #require(
        CredentialFile.permissionProblem(
          path: "/s/c.json", mode: mode, owner: owner, group: group, processUser: 1000, processGroups: [1000]))
    }
    let own = try problem(0o644, owner: 1000, group: 1000)
    #expect(own.contains("0644") && own.contains("0600 or 0400") && own.contains("0640 or 0440"))
    #expect(own.contains("chmod 600 /s/c.json"))
    let foreignGroup = try problem(0o440, owner: 0, group: 3000)
    #expect(foreignGroup.contains("chgrp 1000 /s/c.json"))
    #expect(foreignGroup.contains("fsGroup"))
    let rootWorldReadable = try problem(0o644, owner: 0, group: 1000)
    #expect(rootWorldReadable.contains("chmod 640 /s/c.json"))
    let otherUser = try problem(0o600, owner: 1001, group: 1000)
    #expect(otherUser.contains("chown 1000 /s/c.json"))
  }

  @Test(.enabled(if: geteuid() == 0, "needs root to give a file to root and another group"))
  func aRootOwnedFileReadableByTheProcessGroupIsReadAndAForeignGroupIsNot() throws {
    let path = writeFile(json(), mode: 0o440)
    #expect(chown(path, 0, getegid()) == 0)
    let credentials = try CredentialSource.load(.file(path: path), environment: [:])
    #expect(credentials.username == "integration")
    // A group this process is not in.
    var foreign: gid_t = 54_321
    while CredentialFile.processGroups().contains(foreign) { foreign += 1 }
    #expect(chown(path, 0, foreign) == 0)
    let error = try #require(loadError(.file(path: path)))
    // Root owns it and is this process: owner-only is the fix (chmod 600).
    #expect(error.description.contains("0640 or 0440"))
    #expect(error.description.contains("chmod 600 \(path)"))
    #expect(isClean(error))
  }

  @Test func aMissingFileIsNamed() throws {
    let path = temporaryDirectory("authproxy-credentials") + "/absent.json"
    let error = try #require(loadError(.file(path: path)))
    #expect(error.kind == .invalid)
    #expect(error.description.contains("\(path) does not exist"))
    #expect(error.description.contains("--credentials file:\(path)"))
  }

  @Test func aDirectoryIsNotACredentialsFile() throws {
    let directory = temporaryDirectory("authproxy-credentials")
    let error = try #require(loadError(.file(path: directory)))
    #expect(error.description.contains("not a regular file"))
  }

  @Test(arguments: [
    "not json", #"{"username":"integration","password":"fake-password-for-tests""#, "[1,2,3]", "\"text\"",
  ])
  func badJSONIsRefusedWithoutQuotingIt(text: String) throws {
    let error = try #require(loadError(.file(path: writeFile(text))))
    #expect(error.kind == .invalid)
    #expect(error.description.contains("JSON"))
    #expect(isClean(error))
  }

  @Test func missingFieldsAreNamed() throws {
    let noPassword = try #require(loadError(.file(path: writeFile(json(password: nil)))))
    #expect(noPassword.description.contains("the file: password is missing or empty"))
    let neither = try #require(loadError(.file(path: writeFile("{}"))))
    #expect(neither.description.contains("username and password are missing or empty"))
    let empty = try #require(loadError(.file(path: writeFile(json(username: "")))))
    #expect(empty.description.contains("username is missing or empty"))
    #expect(isClean(empty))
  }

  @Test func fieldsOfTheWrongTypeAreNamedNotQuoted() throws {
    let error = try #require(loadError(.file(path: writeFile(#"{"username":"integration","password":12345678}"#))))
    #expect(error.description.contains("password must be a string"))
    #expect(!error.description.contains("12345678"))
  }

  @Test func rotatedAtIsTakenFromTheJSON() throws {
    let path = writeFile(json(rotatedAt: "2026-01-31T12:00:00Z"))
    setModificationTime(path, 1_000_000_000)
    let credentials = try CredentialSource.load(.file(path: path), environment: [:])
    #expect(credentials.rotatedAt == 1_769_860_800)
  }

  @Test func rotatedAtFallsBackToTheFilesModificationTime() throws {
    let path = writeFile(json())
    setModificationTime(path, 1_700_000_000)
    let credentials = try CredentialSource.load(.file(path: path), environment: [:])
    #expect(credentials.rotatedAt == 1_700_000_000)
  }

  @Test func aRotatedAtThatIsNotRFC3339IsRefused() throws {
    let error = try #require(loadError(.file(path: writeFile(json(rotatedAt: "last tuesday")))))
    #expect(error.description.contains("rotated_at is not an RFC 3339 timestamp"))
  }

  @Test func envCredentialsHaveNoRotationTime() throws {
    let credentials = try CredentialSource.load(.env, environment: ["API_USERNAME": "integration", "API_PASSWORD": password])
    #expect(credentials.rotatedAt == nil)
  }

  // MARK: encrypted-file:

  @Test func readsASealedFile() throws {
    let path = writeFile(try sealed(json(rotatedAt: "2026-01-31T12:00:00+01:00")), named: "credentials.sealed")
    let credentials = try CredentialSource.load(.encryptedFile(path: path), environment: ["ENCRYPTION_KEY": keyBase64])
    #expect(credentials.username == "integration")
    #expect(credentials.password.reveal == password)
    #expect(credentials.rotatedAt == 1_769_857_200)
  }

  @Test func aSealedFileWithoutRotatedAtUsesItsModificationTime() throws {
    let path = writeFile(try sealed(json()), mode: 0o400)
    setModificationTime(path, 1_650_000_000)
    let credentials = try CredentialSource.load(.encryptedFile(path: path), environment: ["ENCRYPTION_KEY": keyBase64])
    #expect(credentials.rotatedAt == 1_650_000_000)
  }

  @Test func aSealedFileOthersCanReadIsRefused() throws {
    let path = writeFile(try sealed(json()), mode: 0o644)
    let error = try #require(loadError(.encryptedFile(path: path), environment: ["ENCRYPTION_KEY": keyBase64]))
    #expect(error.description.contains("chmod 600 \(path)"))
    #expect(error.description.contains("0644"))
  }

  @Test func theWrongKeyIsACleanError() throws {
    let path = writeFile(try sealed(json()))
    let error = try #require(loadError(.encryptedFile(path: path), environment: ["ENCRYPTION_KEY": otherKeyBase64]))
    #expect(error.kind == .invalid)
    #expect(error.description.contains("cannot decrypt \(path)"))
    #expect(error.description.contains("ENCRYPTION_KEY"))
    #expect(isClean(error))
  }

  @Test func anAlteredFileIsACleanError() throws {
    var bytes = [UInt8](Data(base64Encoded: try sealed(json()))!)
    bytes[bytes.count - 1] ^= 0x80
    let path = writeFile(Data(bytes).base64EncodedString())
    let error = try #require(loadError(.encryptedFile(path: path), environment: ["ENCRYPTION_KEY": keyBase64]))
    #expect(error.description.contains("altered"))
    #expect(isClean(error))
  }

  @Test func aMissingOrBadKeyIsNamedWithTheFix() throws {
    let path = writeFile(try sealed(json()))
    let missing = try #require(loadError(.encryptedFile(path: path)))
    #expect(missing.description.contains("ENCRYPTION_KEY is not set"))
    let short = Data(repeating: 0x42, count: 16).base64EncodedString()
    let wrongLength = try #require(loadError(.encryptedFile(path: path), environment: ["ENCRYPTION_KEY": short]))
    #expect(wrongLength.description.contains("openssl rand -base64 32"))
    #expect(!wrongLength.description.contains(short))
  }

  @Test func aPlainJSONFileIsNotASealedOne() throws {
    let path = writeFile(json())
    let error = try #require(loadError(.encryptedFile(path: path), environment: ["ENCRYPTION_KEY": keyBase64]))
    #expect(error.description.contains("not a sealed credentials file"))
    #expect(error.description.contains("authproxy seal"))
    #expect(isClean(error))
  }

  @Test func sealedJSONIsValidatedLikeAFile() throws {
    let path = writeFile(try sealed(json(password: nil)))
    let error = try #require(loadError(.encryptedFile(path: path), environment: ["ENCRYPTION_KEY": keyBase64]))
    #expect(error.description.contains("the sealed JSON: password is missing or empty"))
  }
}
