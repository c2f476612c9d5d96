import AuthProxy

/// The body of `GET /api/v1/bytes?size=N`: N bytes, byte i being `UInt8(i % 251)`, with a
/// Content-Length, sent in 64 KiB chunks only as fast as the client reads them.
///
/// Backpressure: chunks are queued while less than `highWatermark` bytes wait for the client's
/// socket; then the stream waits for the drain callback of the last chunk (evhttp calls it
/// when the connection's output buffer is empty). Memory per stream stays under
/// `highWatermark + chunkSize`, however large N is.
final class SandboxByteStream {
  static let chunkSize = 64 * 1024
  static let highWatermark = 512 * 1024
  /// Every chunk is a slice of this: the sequence starting at any phase of the 251-cycle.
  private static let pattern: [UInt8] = (0..<(251 + chunkSize)).map { UInt8($0 % 251) }

  private let request: ServerRequest
  private let total: Int
  private var sent = 0
  private var pumping = false
  private var finished = false
  /// Once a second: notices a client that went away (evhttp then detaches the request and
  /// will never call the drain callback) and a drain callback that did not come.
  private var watchdog: Timer?
  /// Called once, when the stream is complete or abandoned.
  var onFinish: (() -> Void)?

  init(loop: EventLoop, request: ServerRequest, size: Int) {
    self.request = request
    total = size
    watchdog = Timer(loop: loop) { [weak self] in self?.check() }
  }

  func start() {
    request.startStream(
      status: 200, headers: [("Content-Type", "application/octet-stream"), ("Content-Length", String(total))])
    pump()
    if !finished { watchdog?.schedule(after: 1) }
  }

  /// Stops without finishing the reply (the loop is stopping).
  func cancel() {
    guard !finished else { return }
    finished = true
    watchdog?.cancel()
    // A request whose client is gone belongs to us: free it. Others go with their connection.
    if request.connection == nil { request.endStream() }
  }

  private func pump() {
    // The drain callback can run from inside `send` (the TLS layer writes at once): the loop
    // below goes on by itself then.
    guard !finished, !pumping else { return }
    pumping = true
    defer { pumping = false }
    while sent < total {
      guard request.connection != nil else { return finish() }
      if request.pendingOutput >= Self.highWatermark { return }
      let count = min(Self.chunkSize, total - sent)
      let phase = sent % 251
      sent += count
      Self.pattern.withUnsafeBytes { all in
        request.send(UnsafeRawBufferPointer(rebasing: all[phase..<(phase + count)])) { [weak self] in self?.pump() }
      }
    }
    finish()
  }

  private func check() {
    guard !finished else { return }
    if request.connection == nil {
      finish()
      return
    }
    if request.pendingOutput < Self.highWatermark { pump() }
    if !finished { watchdog?.schedule(after: 1) }
  }

  /// Completes the reply, or frees it when the client went away (a detached request).
  private func finish() {
    guard !finished else { return }
    finished = true
    watchdog?.cancel()
    request.endStream()
    onFinish?()
    onFinish = nil
  }
}
