import Logging

/// Reads `--apps-file` again when it changes (polled like the credentials file, read once it
/// has settled) and on SIGHUP, off the loop; a valid new table goes to every worker, a bad one
/// is logged and the old table stays. Lives on the control thread.
final class AppsReloader {
  private let path: String
  private let logger: Logger
  private var pollTimer: Timer?
  private var watch: SettledFileChange
  private var loading = false
  private var loadAgain: String?
  /// The table the workers have.
  private(set) var table: AppTable?
  /// Reads the file off the loop and posts the result (set by the control loop).
  var startLoad: ((String) -> Void)?
  /// A new table to hand to the workers.
  var onChange: ((AppTable) -> Void)?

  init(loop: EventLoop, path: String, table: AppTable?, logger: Logger, pollInterval: Double = 2) {
    self.path = path
    self.table = table
    self.logger = logger
    watch = SettledFileChange(path: path)
    pollTimer = Timer(loop: loop) { [unowned self] in
      self.poll(interval: pollInterval)
      self.pollTimer?.schedule(after: pollInterval)
    }
    pollTimer?.schedule(after: pollInterval)
  }

  private func poll(interval: Double) {
    if case .settled = watch.poll(path: path) { load(reason: "the apps file changed") }
  }

  /// Reads the file again (SIGHUP, a change); one read at a time.
  func load(reason: String) {
    guard !loading else {
      loadAgain = reason
      return
    }
    loading = true
    startLoad?(reason)
  }

  /// The read finished.
  func loaded(_ result: Result<AppTable, AppsFileError>, reason: String) {
    loading = false
    switch result {
    case .success(let fresh):
      if fresh == table {
        logger.info("apps file read (\(reason)): unchanged")
      } else {
        table = fresh
        logger.info(
          "apps file read (\(reason)): \(fresh.apps.count) app\(fresh.apps.count == 1 ? "" : "s") (\(fresh.apps.map(\.name).joined(separator: ", ")))"
        )
        onChange?(fresh)
      }
    case .failure(let error):
      logger.error(
        "cannot use the new apps file (\(reason)): \(error.description); keeping the previous apps", metadata: ["reason": "apps_file"])
    }
    if let again = loadAgain {
      loadAgain = nil
      load(reason: again)
    }
  }
}
