import FoundationEssentials

/// The JSON bodies of the sandbox API and how they are written.
enum SandboxJSON {
  static let contentType = (name: "Content-Type", value: "application/json")

  static func encode<T: Encodable>(_ value: T) -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    // Every body here is plain strings and numbers: encoding cannot fail.
    return (try? Array(encoder.encode(value))) ?? Array("{}".utf8)
  }

  /// Decodes a request body; nil when it is not JSON of that shape.
  static func decode<T: Decodable>(_ type: T.Type, from body: [UInt8]) -> T? {
    try? JSONDecoder().decode(type, from: Data(body))
  }

  /// RFC 3339 in UTC, whole seconds: "2026-11-29T10:00:00Z".
  static func timestamp(_ date: Date) -> String {
    date.formatted(.iso8601)
  }

  struct Envelope<Payload: Encodable>: Encodable {
    let success = true
    let data: Payload
  }

  struct Tokens: Encodable {
    let accessToken: String
    let refreshToken: String
    let accessExpiresAt: String
    let refreshExpiresAt: String
    let clientID: Int
    let clientIDForm: SandboxClientIDForm

    enum CodingKeys: String, CodingKey {
      case accessToken = "access_token"
      case refreshToken = "refresh_token"
      case accessExpiresAt = "access_expires_at"
      case refreshExpiresAt = "refresh_expires_at"
      case clientID = "client_id"
    }

    init(_ pair: SandboxTokenPair, clientIDForm: SandboxClientIDForm) {
      accessToken = pair.accessToken
      refreshToken = pair.refreshToken
      accessExpiresAt = SandboxJSON.timestamp(pair.accessExpiresAt)
      refreshExpiresAt = SandboxJSON.timestamp(pair.refreshExpiresAt)
      clientID = pair.clientID
      self.clientIDForm = clientIDForm
    }

    func encode(to encoder: any Encoder) throws {
      var c = encoder.container(keyedBy: CodingKeys.self)
      try c.encode(accessToken, forKey: .accessToken)
      try c.encode(refreshToken, forKey: .refreshToken)
      try c.encode(accessExpiresAt, forKey: .accessExpiresAt)
      try c.encode(refreshExpiresAt, forKey: .refreshExpiresAt)
      switch clientIDForm {
      case .number: try c.encode(clientID, forKey: .clientID)
      case .string: try c.encode(String(clientID), forKey: .clientID)
      case .absent: break
      }
    }
  }

  /// The logout page's `data`: a message, nothing else.
  struct LogoutResult: Encodable {
    let message = "Successfully logged out"
  }

  struct Echo: Encodable {
    let method: String
    let target: String
    let headers: [[String]]
    let bodyBase64: String
    let bodyLength: Int
    let clientID: Int
    /// The client's TCP port: equal ports on two requests mean one kept-alive connection.
    let peerPort: Int

    enum CodingKeys: String, CodingKey {
      case method, target, headers
      case bodyBase64 = "body_base64"
      case bodyLength = "body_length"
      case clientID = "client_id"
      case peerPort = "peer_port"
    }
  }

  struct Product: Encodable {
    let id: Int
    let sku: String
    let name: String
    let priceCents: Int
    let points: Int
    let inStock: Bool

    enum CodingKeys: String, CodingKey {
      case id, sku, name, points
      case priceCents = "price_cents"
      case inStock = "in_stock"
    }

    static let catalogue: [Product] = (1...45).map { id in
      Product(
        id: id, sku: "SKU-" + String(repeating: "0", count: id < 10 ? 3 : 2) + String(id),
        name: "Popup reward \(id)", priceCents: 199 + id * 100, points: id * 50, inStock: id % 7 != 0)
    }
  }

  struct Order: Encodable {
    let id: Int
    let status: String
    let productID: Int
    let quantity: Int
    let pointsDebited: Int
    let clientID: Int
    let createdAt: String

    enum CodingKeys: String, CodingKey {
      case id, status, quantity
      case productID = "product_id"
      case pointsDebited = "points_debited"
      case clientID = "client_id"
      case createdAt = "created_at"
    }
  }

  struct OrderRequest: Decodable {
    let productID: Int?
    let quantity: Int?

    enum CodingKeys: String, CodingKey {
      case productID = "product_id"
      case quantity
    }
  }

  struct Slept: Encodable {
    let sleptMs: Int
    enum CodingKeys: String, CodingKey { case sleptMs = "slept_ms" }
  }

  struct Status: Encodable {
    let status: Int
  }
}
