import CCurl
import CEvent
import CShims
import Glibc

/// curl's multi interface driven by one `EventLoop` (curl's hiperfifo pattern): curl tells us
/// which sockets to watch and when to wake it; libevent tells curl when they are ready.
/// One per thread; its connection cache is the keep-alive pool of that thread.
public final class CurlMulti {
  let multi: UnsafeMutableRawPointer
  /// DNS cache and TLS sessions of this thread's transfers (used by this thread only: no locks).
  private let share: UnsafeMutableRawPointer?
  let loop: EventLoop
  private var timer: Timer!
  /// Transfers in flight, by their easy handle (also in CURLOPT_PRIVATE).
  private var transfers: [UnsafeMutableRawPointer: CurlTransfer] = [:]
  /// True while curl is calling us back: curl multi functions must not be called then.
  private(set) var inCurl = false

  static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_ALL)) }()

  public init(loop: EventLoop, maxConnectionAge: Int = 30) throws(EventError) {
    _ = CurlMulti.globalInit
    guard let multi = curl_multi_init() else { throw EventError("curl_multi_init failed") }
    self.multi = multi
    self.loop = loop
    share = ap_curl_share_for_thread()
    timer = Timer(loop: loop) { [unowned self] in self.timeoutFired() }
    // Context: unretained self for both callbacks; the multi handle is cleaned up in deinit.
    let me = Unmanaged.passUnretained(self).toOpaque()
    ap_curl_multi_setopt_socket_cb(multi, curlSocketTrampoline)  // CURLMOPT_SOCKETFUNCTION
    ap_curl_multi_setopt_ptr(multi, CURLMOPT_SOCKETDATA, me)
    ap_curl_multi_setopt_timer_cb(multi, curlTimerTrampoline)  // CURLMOPT_TIMERFUNCTION
    ap_curl_multi_setopt_ptr(multi, CURLMOPT_TIMERDATA, me)
    ap_curl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, 256)
  }

  deinit {
    for (_, transfer) in transfers { transfer.detach(from: multi) }
    curl_multi_cleanup(multi)
    if let share { curl_share_cleanup(share) }
  }

  /// Starts a transfer; its callbacks run on this loop.
  public func start(_ transfer: CurlTransfer) {
    let easy = transfer.easy
    if let share { ap_curl_easy_setopt_ptr(easy, CURLOPT_SHARE, UnsafeRawPointer(share)) }
    transfers[easy] = transfer
    curl_multi_add_handle(multi, easy)
  }

  /// Stops a transfer without calling its completion. Safe from any callback: inside curl it
  /// is deferred to the next loop pass.
  public func cancel(_ transfer: CurlTransfer) {
    guard transfers[transfer.easy] != nil else { return }
    if inCurl {
      loop.soon { [weak self, transfer] in self?.cancel(transfer) }
      return
    }
    transfers[transfer.easy] = nil
    transfer.detach(from: multi)
  }

  fileprivate func socketAction(_ fd: Int32, _ flags: Int32) {
    var running: Int32 = 0
    inCurl = true
    curl_multi_socket_action(multi, fd, flags, &running)
    inCurl = false
    finishDone()
  }

  private func timeoutFired() { socketAction(-1, 0) }  // CURL_SOCKET_TIMEOUT

  /// Completes finished transfers, after curl returned (never from inside a curl callback).
  private func finishDone() {
    var easy: UnsafeMutableRawPointer?
    var result = CURLE_OK
    while ap_curl_multi_next_done(multi, &easy, &result) != 0 {
      guard let easy, let transfer = transfers.removeValue(forKey: easy) else { continue }
      transfer.detach(from: multi)
      transfer.complete(result)
    }
  }

  fileprivate func setTimer(_ milliseconds: Int) {
    if milliseconds < 0 {
      timer.cancel()
    } else {
      timer.schedule(after: Double(milliseconds) / 1000)
    }
  }

  fileprivate func watch(_ fd: Int32, what: Int32, existing: SocketWatch?) {
    if what == CURL_POLL_REMOVE {
      if let existing {
        curl_multi_assign(multi, fd, nil)
        existing.stop()
        // Release of the retain taken below when the watch was created.
        Unmanaged.passUnretained(existing).release()
      }
      return
    }
    let flags =
      Int16(EV_PERSIST) | (what & CURL_POLL_IN != 0 ? Int16(EV_READ) : 0)
      | (what & CURL_POLL_OUT != 0 ? Int16(EV_WRITE) : 0)
    if let existing {
      existing.update(flags: flags)
    } else {
      let watch = SocketWatch(multi: self, fd: fd, flags: flags)
      // Retained for curl (socketp) until CURL_POLL_REMOVE releases it.
      curl_multi_assign(multi, fd, Unmanaged.passRetained(watch).toOpaque())
    }
  }
}

/// Per-socket context of a `CurlMulti`: the libevent event watching one of curl's sockets.
final class SocketWatch {
  private unowned let multi: CurlMulti
  private let fd: Int32
  private var event: OpaquePointer?

  init(multi: CurlMulti, fd: Int32, flags: Int16) {
    self.multi = multi
    self.fd = fd
    update(flags: flags)
  }

  func update(flags: Int16) {
    stop()
    // Context: unretained self; the event is freed in stop(), before curl releases us.
    event = event_new(multi.loop.base, fd, flags, socketEventTrampoline, Unmanaged.passUnretained(self).toOpaque())
    if let event { event_add(event, nil) }
  }

  func stop() {
    if let event {
      event_del(event)
      event_free(event)
    }
    event = nil
  }

  fileprivate func ready(_ what: Int16) {
    let flags =
      (what & Int16(EV_READ) != 0 ? CURL_CSELECT_IN : 0) | (what & Int16(EV_WRITE) != 0 ? CURL_CSELECT_OUT : 0)
    multi.socketAction(fd, flags)
  }
}

/* CURLMOPT_SOCKETFUNCTION */
private func curlSocketTrampoline(
  _ easy: UnsafeMutableRawPointer?, _ fd: curl_socket_t, _ what: Int32, _ userp: UnsafeMutableRawPointer?,
  _ socketp: UnsafeMutableRawPointer?
) -> Int32 {
  guard let userp else { return 0 }
  let multi = Unmanaged<CurlMulti>.fromOpaque(userp).takeUnretainedValue()
  let existing = socketp.map { Unmanaged<SocketWatch>.fromOpaque($0).takeUnretainedValue() }
  multi.watch(fd, what: what, existing: existing)
  return 0
}

/* CURLMOPT_TIMERFUNCTION: -1 deletes the timer, 0 means "on the next loop pass" — never act inline. */
private func curlTimerTrampoline(_ multi: UnsafeMutableRawPointer?, _ timeoutMs: Int, _ userp: UnsafeMutableRawPointer?) -> Int32 {
  guard let userp else { return 0 }
  Unmanaged<CurlMulti>.fromOpaque(userp).takeUnretainedValue().setTimer(timeoutMs)
  return 0
}

private func socketEventTrampoline(_ fd: Int32, _ what: Int16, _ ctx: UnsafeMutableRawPointer?) {
  guard let ctx else { return }
  let watch = Unmanaged<SocketWatch>.fromOpaque(ctx).takeUnretainedValue()
  withExtendedLifetime(watch) { watch.ready(what) }
}
