extension RequestFramer {
  /// Why the framer refused a request; turned into the `FramingRejection` the client gets.
  enum Failure: UInt8 {
    case requestLineTooLong, headersTooLarge, tooManyHeaders, trailersTooLarge, tooManyTrailers
    case bodyTooLarge
    case malformedRequestLine, methodNotSupported, notOriginForm, fragmentInTarget, invalidTargetByte
    case unsupportedVersion, bareCR, tooManyEmptyLines
    case obsoleteLineFolding, emptyFieldName, invalidFieldName, whitespaceBeforeColon, missingColon
    case invalidFieldValue
    case invalidContentLength, contentLengthList, contentLengthOutOfRange, conflictingContentLengths
    case unsupportedTransferEncoding, multipleTransferEncodings, tabBeforeTransferEncoding
    case transferEncodingOnHTTP10, bothContentLengthAndTransferEncoding, bodyOnHEAD
    case invalidChunkSize, chunkSizeOutOfRange, invalidChunkExtension, chunkLineTooLong
    case missingChunkDataCRLF, forbiddenTrailerField, chunkedInTE

    func rejection(limits: RequestLimits, requestID: String?) -> FramingRejection {
      let status: Int
      let code: String
      let message: String
      switch self {
      case .requestLineTooLong:
        (status, code, message) = (414, "uri_too_long", "request line longer than \(limits.maxRequestLine) bytes")
      case .headersTooLarge:
        (status, code, message) = (431, "headers_too_large", "request head larger than \(limits.maxHeaderBytes) bytes")
      case .tooManyHeaders:
        (status, code, message) = (431, "headers_too_large", "more than \(limits.maxHeaderCount) header fields")
      case .trailersTooLarge:
        (status, code, message) = (431, "headers_too_large", "trailer section larger than \(limits.maxHeaderBytes) bytes")
      case .tooManyTrailers:
        (status, code, message) = (431, "headers_too_large", "more than \(limits.maxHeaderCount) trailer fields")
      case .bodyTooLarge:
        (status, code, message) = (413, "body_too_large", "request body larger than \(limits.maxBody) bytes")
      default:
        status = 400
        code = "bad_request"
        message = badRequestMessage
      }
      return FramingRejection(status: status, code: code, message: message, requestID: requestID)
    }

    private var badRequestMessage: String {
      switch self {
      case .malformedRequestLine: return "malformed request line"
      case .methodNotSupported: return "request method is not supported (CONNECT and TRACE are never proxied)"
      case .notOriginForm: return "only origin-form targets are proxied"
      case .fragmentInTarget: return "fragment in request target"
      case .invalidTargetByte: return "invalid byte in request target"
      case .unsupportedVersion: return "unsupported or malformed HTTP version (HTTP/1.0 or HTTP/1.1 only)"
      case .bareCR: return "CR not followed by LF"
      case .tooManyEmptyLines: return "more than \(RequestFramer.maxEmptyLines) empty lines before the request line"
      case .obsoleteLineFolding: return "obsolete line folding in header section"
      case .emptyFieldName: return "empty header field name"
      case .invalidFieldName: return "invalid character in header field name"
      case .whitespaceBeforeColon: return "whitespace between header field name and colon"
      case .missingColon: return "header line without colon"
      case .invalidFieldValue: return "invalid character in header field value"
      case .invalidContentLength: return "invalid Content-Length"
      case .contentLengthList: return "Content-Length with a list of values is not supported"
      case .contentLengthOutOfRange: return "Content-Length out of range"
      case .conflictingContentLengths: return "conflicting Content-Length values"
      case .unsupportedTransferEncoding: return "unsupported Transfer-Encoding (only chunked is accepted)"
      case .multipleTransferEncodings: return "more than one Transfer-Encoding header"
      case .tabBeforeTransferEncoding: return "tab before Transfer-Encoding value"
      case .transferEncodingOnHTTP10: return "Transfer-Encoding in an HTTP/1.0 request"
      case .bothContentLengthAndTransferEncoding: return "both Content-Length and Transfer-Encoding"
      case .bodyOnHEAD: return "HEAD request with a body"
      case .invalidChunkSize: return "invalid chunk size"
      case .chunkSizeOutOfRange: return "chunk size out of range"
      case .invalidChunkExtension: return "invalid chunk extension"
      case .chunkLineTooLong: return "chunk size line longer than the header limit"
      case .missingChunkDataCRLF: return "chunk data not followed by CRLF"
      case .forbiddenTrailerField: return "framing or routing field in trailer section"
      case .chunkedInTE: return "TE names the chunked transfer coding"
      default: return "bad request"
      }
    }
  }
}
