import AuthProxy
import Foundation
import Synchronization
import Testing
import TestSupport

/// A wall clock the test moves by hand.
private final class ManualClock: WallClock {
  private let seconds: Mutex<Double>
  init(_ start: Double) { seconds = Mutex(start) }
  func now() -> Double { seconds.withLock { $0 } }
  func advance(_ by: Double) { seconds.withLock { $0 += by } }
}

/// Issue 17, point 1, on `/dev/full` (every write fails with ENOSPC): the sink's retry buffer,
/// its count of dropped lines and its rate-limited diagnostic line, with the time of the
/// once-a-minute rule from an injected clock.
@Suite struct AccessLogSinkTests {
  @Test func aFailingLogIsSaidAtOnceThenAtMostOnceAMinuteAndWhatCannotWaitIsCounted() throws {
    let clock = ManualClock(1_000_000)
    let logs = LogCapture()
    let failures = Mutex<[String]>([])
    let sink = try AccessLogSink(path: "/dev/full", bufferBytes: 4096, logger: logs.logger, clock: clock)
    sink.onFailure { reason in failures.withLock { $0.append(reason) } }
    func said() -> [String] { logs.all.filter { $0.contains("access log:") && $0.contains("cannot write to /dev/full") } }

    let line = Array("{\"request_id\":\"r\"}\n".utf8)
    sink.write(Array([[UInt8]](repeating: line, count: 10).joined()))
    // Retried every second, said once, alerted once.
    #expect(eventually { (sink.stats.writeErrors["no_space"] ?? 0) >= 2 })
    #expect(said().count == 1)
    #expect(said().first?.contains("No space left on device") == true)
    #expect(failures.withLock { $0.count } == 1)
    #expect(eventually { sink.stats.bufferedBytes == 10 * line.count }, "the lines wait")
    #expect(sink.stats.droppedLines == 0)

    // Past the 4 KiB buffer: the whole lines that fit wait, the rest are dropped and counted
    // by the line.
    let fit = (4096 - 10 * line.count) / line.count
    sink.write(Array([[UInt8]](repeating: line, count: 300).joined()))
    #expect(sink.stats.droppedLines == 300 - fit)
    // (Read between the writer's retries: during one, the lines are out of the queue.)
    #expect(eventually { sink.stats.bufferedBytes == (10 + fit) * line.count })

    // A minute later (the injected clock), said once more with what was dropped meanwhile.
    let errors = sink.stats.writeErrors["no_space"] ?? 0
    #expect(eventually { (sink.stats.writeErrors["no_space"] ?? 0) > errors })
    #expect(said().count == 1, "not again within the minute")
    clock.advance(61)
    #expect(eventually { said().count == 2 })
    #expect(said().last?.contains("still") == true)
    #expect(said().last?.contains("\(300 - fit) lines dropped") == true)
    #expect(failures.withLock { $0.count } == 1, "one alert per episode")

    // At exit, what still waits is lost: counted and said.
    sink.flushAndStop()
    #expect(sink.stats.droppedLines == 310)
    #expect(logs.all.contains { $0.contains("\(10 + fit) lines could not be written before exit") })
  }

  /// A worker hands over up to 64 KiB of lines at once. With a smaller buffer and a disk that
  /// is fine, the lines that fit are written and only the rest are dropped: a batch dropped
  /// whole lost every line of a busy second.
  @Test func aBatchLargerThanTheBufferKeepsTheWholeLinesThatFit() throws {
    let directory = temporaryDirectory("authproxy-sink-batch")
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = directory + "/access.log"
    let sink = try AccessLogSink(path: path, bufferBytes: 4096)
    let lines = (0..<500).map { Array("{\"request_id\":\"r-\(String(format: "%03d", $0))\"}\n".utf8) }
    let fit = 4096 / lines[0].count
    sink.write(Array(lines.joined()))
    sink.flushAndStop()
    let written = try String(contentsOfFile: path, encoding: .utf8)
    #expect(written == String(decoding: lines[..<fit].joined(), as: UTF8.self), "the first \(fit) lines, whole and in order")
    #expect(sink.stats.droppedLines == 500 - fit)
    #expect(sink.stats.writeErrors.values.reduce(0, +) == 0)
  }
}
