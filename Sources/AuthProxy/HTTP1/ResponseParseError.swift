/// Why an upstream response was refused. `reason` is fixed text: it never echoes bytes of the response.
struct ResponseParseError: Error, Equatable, Sendable {
  let reason: String

  static let malformedStatusLine = ResponseParseError(reason: "malformed status line")
  static let invalidStatusCode = ResponseParseError(reason: "status code below 100")
  static let switchingProtocols = ResponseParseError(reason: "101 Switching Protocols is not supported")
  static let invalidReasonPhrase = ResponseParseError(reason: "invalid character in reason phrase")
  static let headTooLarge = ResponseParseError(reason: "response head too large")
  static let tooManyHeaders = ResponseParseError(reason: "too many header fields")
  static let trailersTooLarge = ResponseParseError(reason: "trailer section too large")
  static let tooManyTrailers = ResponseParseError(reason: "too many trailer fields")
  static let obsoleteLineFolding = ResponseParseError(reason: "obsolete line folding")
  static let emptyFieldName = ResponseParseError(reason: "empty header field name")
  static let invalidFieldName = ResponseParseError(reason: "invalid character in header field name")
  static let whitespaceBeforeColon = ResponseParseError(reason: "whitespace between header field name and colon")
  static let missingColon = ResponseParseError(reason: "header line without colon")
  static let invalidFieldValue = ResponseParseError(reason: "invalid character in header field value")
  static let invalidContentLength = ResponseParseError(reason: "invalid Content-Length")
  static let contentLengthOutOfRange = ResponseParseError(reason: "Content-Length out of range")
  static let conflictingContentLengths = ResponseParseError(reason: "conflicting Content-Length values")
  static let transferEncodingInHTTP10 = ResponseParseError(reason: "Transfer-Encoding in an HTTP/1.0 response")
  static let chunkLineTooLong = ResponseParseError(reason: "chunk size line too long")
  static let invalidChunkSize = ResponseParseError(reason: "invalid chunk size")
  static let chunkSizeOutOfRange = ResponseParseError(reason: "chunk size out of range")
  static let invalidChunkExtension = ResponseParseError(reason: "invalid character in chunk extension")
  static let missingChunkDataCRLF = ResponseParseError(reason: "chunk data not followed by CRLF")
}
