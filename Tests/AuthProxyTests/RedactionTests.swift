import AuthProxy
import Testing

/// The net under "no value that can hold a secret is shown" (issue 17, point 3).
@Suite struct RedactionTests {
  @Test func userInformationQueryAndFragmentOfAURLAreReplaced() {
    #expect(Redaction.url("https://user:pw-123456@host:8443/base") == "https://<redacted>@host:8443/base")
    #expect(Redaction.url("https://host/path?token=abc#frag") == "https://host/path?<redacted>")
    #expect(Redaction.url("redis://:pw@10.0.0.1:6379/2") == "redis://<redacted>@10.0.0.1:6379/2")
    #expect(Redaction.url("https://api.example.com/v1") == "https://api.example.com/v1")
  }

  @Test func everyURLInATextIsScrubbedAndTheRestKept() {
    let text = "Error: Unexpected argument 'https://u:p@a.example' and 'http://b.example/x?k=v', see --help"
    #expect(
      Redaction.scrub(text) == "Error: Unexpected argument 'https://<redacted>@a.example' and 'http://b.example/x?<redacted>', see --help")
  }

  @Test func knownSecretValuesAreReplacedButShortOnesAreNot() {
    #expect(Redaction.scrub("key is Zm9vYmFyYmF6 here", secrets: ["Zm9vYmFyYmF6"]) == "key is <redacted> here")
    #expect(Redaction.scrub("a short word", secrets: ["a"]) == "a short word")
  }
}
