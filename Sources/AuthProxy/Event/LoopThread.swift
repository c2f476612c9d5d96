import CShims
import Glibc
import Synchronization

/// A POSIX thread that runs one closure; the home of each `EventLoop`.
public final class LoopThread: @unchecked Sendable {
  // @unchecked: `thread` is written once in init, before any other thread can see self,
  // and read only by join() and detach().
  private var thread = pthread_t()
  /// Joined or detached already: a second pthread_join is undefined behaviour.
  private let released = Atomic<Bool>(false)

  /// Starts `body` on a new thread named `name` (shown by top/gdb, at most 15 bytes).
  public init(name: String, _ body: @escaping @Sendable () -> Void) {
    final class Box: @unchecked Sendable {
      let body: @Sendable () -> Void
      let name: String
      init(_ body: @escaping @Sendable () -> Void, name: String) {
        self.body = body
        self.name = name
      }
    }
    // Context: retained here, released by the thread once it has taken the closure.
    let box = Unmanaged.passRetained(Box(body, name: name)).toOpaque()
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    pthread_attr_setstacksize(&attributes, 1 << 20)
    let result = pthread_create(
      &thread, &attributes,
      { raw in
        let box = Unmanaged<AnyObject>.fromOpaque(raw!).takeRetainedValue()
        if let box = box as? Box {
          ap_set_thread_name(String(box.name.prefix(15)))
          box.body()
        }
        return nil
      }, box)
    pthread_attr_destroy(&attributes)
    precondition(result == 0, "pthread_create failed: \(result)")
  }

  /// Lets the thread go: its resources are freed when it ends, and nobody joins it.
  public func detach() {
    guard !released.exchange(true, ordering: .acquiringAndReleasing) else { return }
    pthread_detach(thread)
  }

  /// Waits for the thread's closure to return; later calls return at once.
  public func join() {
    guard !released.exchange(true, ordering: .acquiringAndReleasing) else { return }
    pthread_join(thread, nil)
  }
}
