import Testing

@testable import AuthProxy

// MARK: - Builders

private let password = "hunter2-correct-horse"

private func dumped<T>(_ value: T) -> String {
  var out = ""
  dump(value, to: &out)
  return out
}

private func credentialError(_ environment: [String: String]) -> CredentialError? {
  do throws(CredentialError) {
    _ = try CredentialSource.load(.env, environment: environment)
    return nil
  } catch {
    return error
  }
}

// MARK: - Specification

@Suite struct CredentialSourceTests {

  @Test func envReadsUsernameAndPassword() throws {
    let credentials = try CredentialSource.load(.env, environment: ["API_USERNAME": "integration", "API_PASSWORD": password])
    #expect(credentials.username == "integration")
    #expect(credentials.password.reveal == password)
  }

  @Test func missingUsernameIsNamed() throws {
    let error = try #require(credentialError(["API_PASSWORD": password]))
    #expect(error.description.contains("API_USERNAME is not set"))
    #expect(!error.description.contains("API_PASSWORD is not set"))
  }

  @Test func missingPasswordIsNamed() throws {
    let error = try #require(credentialError(["API_USERNAME": "integration"]))
    #expect(error.description.contains("API_PASSWORD is not set"))
  }

  @Test func bothMissingAreNamedTogether() throws {
    let error = try #require(credentialError([:]))
    #expect(error.description.contains("API_USERNAME and API_PASSWORD are not set"))
    #expect(error.description.contains("--credentials env"))
  }

  @Test func emptyVariablesCountAsMissing() throws {
    let error = try #require(credentialError(["API_USERNAME": "", "API_PASSWORD": ""]))
    #expect(error.description.contains("API_USERNAME and API_PASSWORD are not set"))
  }

  @Test func theErrorNeverContainsThePassword() throws {
    let error = try #require(credentialError(["API_USERNAME": "", "API_PASSWORD": password]))
    #expect(!error.description.contains(password))
    #expect(!String(reflecting: error).contains(password))
    #expect(!dumped(error).contains(password))
  }
}

@Suite struct CredentialSpecTests {

  @Test(arguments: [
    ("env", CredentialSpec.env), ("file:/etc/authproxy/credentials.json", .file(path: "/etc/authproxy/credentials.json")),
    ("file:relative.json", .file(path: "relative.json")),
    ("encrypted-file:/run/secrets/credentials", .encryptedFile(path: "/run/secrets/credentials")),
    ("vault:secret/data/authproxy", .vault(path: "secret/data/authproxy")),
  ])
  func parsesEverySource(text: String, expected: CredentialSpec) {
    #expect(CredentialSpec.parse(text) == expected)
    #expect(CredentialSpec.parse(text)?.description == text)
  }

  @Test(arguments: ["", "ldap", "file:", "encrypted-file:", "vault:", "ENV", "file", "s3:bucket/key"])
  func refusesWhatNamesNoSource(text: String) {
    #expect(CredentialSpec.parse(text) == nil)
  }

  @Test func fileSourcesNameTheFileToWatch() {
    #expect(CredentialSpec.file(path: "/a").watchedFile == "/a")
    #expect(CredentialSpec.encryptedFile(path: "/b").watchedFile == "/b")
    #expect(CredentialSpec.env.watchedFile == nil)
    #expect(CredentialSpec.vault(path: "secret/x").watchedFile == nil)
  }

  @Test func anUnknownSourceInTheConfigurationListsTheForms() {
    guard
      case .failure(let errors) = ServeConfig.load(
        flags: ["upstream": "https://api.example.com", "credentials": "ldap"], environment: [:])
    else {
      Issue.record("--credentials ldap was accepted")
      return
    }
    #expect(errors.problems.contains { $0.contains("env, file:PATH, encrypted-file:PATH, vault:PATH or db:ID") })
  }

  @Test func envErrorsAreInvalidNotUnreachable() throws {
    let error = try #require(credentialError([:]))
    #expect(error.kind == .invalid)
    #expect(error.source == "--credentials env")
  }
}
