import Foundation
import Synchronization

/// Everything a process wrote to one of its pipes, read as it comes on a thread of its own (a
/// full pipe would block the process, and a test may look at the text while it runs).
public final class PipeCollector: Sendable {
  private let data = Mutex<[UInt8]>([])
  private let finished = Atomic<Bool>(false)

  public init(_ handle: FileHandle) {
    Thread { [self] in
      while true {
        let chunk = handle.availableData
        if chunk.isEmpty { break }
        data.withLock { $0.append(contentsOf: chunk) }
      }
      finished.store(true, ordering: .releasing)
    }.start()
  }

  public var bytes: [UInt8] { data.withLock { $0 } }
  public var text: String { String(decoding: bytes, as: UTF8.self) }
  /// The writer closed the pipe and every byte was read.
  public var isFinished: Bool { finished.load(ordering: .acquiring) }
}
