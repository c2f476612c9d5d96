import Glibc

/// A child process started with `posix_spawn`: the alert command (`/bin/sh -c CMD`) and
/// `gzip -dc` for rotated access logs. Nothing here blocks unless asked to: `poll()` reaps
/// without waiting, so a loop can watch the child with a `Timer`.
///
/// The child gets its own process group (so a kill reaches what the shell started too),
/// default signal dispositions and an empty signal mask (the proxy ignores SIGPIPE; the child
/// must not inherit that), and only the environment it is given.
public final class ChildProcess {
  /// How a child ended.
  public enum Exit: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signalled(Int32)
    /// Someone else reaped the child (ECHILD): its status is unknown.
    case unknown

    public var isSuccess: Bool { self == .exited(0) }

    public var description: String {
      switch self {
      case .exited(let code): "exit status \(code)"
      case .signalled(let signal): "killed by signal \(signal)"
      case .unknown: "unknown exit status"
      }
    }
  }

  /// What the child reads on standard input.
  public enum Input {
    case nothing
    /// These bytes, then end of file. Written at spawn time into the socket buffer, so keep
    /// them small (`maxInput`); longer input is cut.
    case bytes([UInt8])
  }

  /// Input written at spawn time is cut to this size, which always fits a socket buffer.
  public static let maxInput = 16 * 1024

  public let pid: pid_t
  /// Our end of the child's standard output when `captureOutput` was asked (owned here).
  public private(set) var outputFD: Int32?
  public private(set) var exit: Exit?

  /// Starts `arguments[0]` (searched in PATH when it holds no slash) with `arguments`.
  /// The child's standard error is ours; its standard output is ours too, or a socket read
  /// through `outputFD`, or (with `outputToStandardError`) our standard error.
  public init(
    arguments: [String], environment: [String: String], input: Input, captureOutput: Bool = false,
    outputToStandardError: Bool = false
  ) throws(EventError) {
    precondition(!arguments.isEmpty, "ChildProcess needs a program")
    var inputFDs: [Int32] = [-1, -1]
    if case .bytes = input {
      // A socket pair rather than a pipe: send(MSG_NOSIGNAL) cannot raise SIGPIPE if the child
      // exits before reading.
      guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &inputFDs) == 0 else {
        throw EventError("socketpair failed: \(String(cString: strerror(errno)))")
      }
    }
    var outputFDs: [Int32] = [-1, -1]
    if captureOutput {
      guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &outputFDs) == 0 else {
        let message = String(cString: strerror(errno))
        for fd in inputFDs where fd >= 0 { close(fd) }
        throw EventError("socketpair failed: \(message)")
      }
    }
    defer {
      if inputFDs[1] >= 0 { close(inputFDs[1]) }
      if outputFDs[1] >= 0 { close(outputFDs[1]) }
    }

    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    if inputFDs[1] >= 0 {
      posix_spawn_file_actions_adddup2(&actions, inputFDs[1], 0)
    } else {
      posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    }
    if outputFDs[1] >= 0 {
      posix_spawn_file_actions_adddup2(&actions, outputFDs[1], 1)
    } else if outputToStandardError {
      posix_spawn_file_actions_adddup2(&actions, 2, 1)
    }

    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    posix_spawnattr_setpgroup(&attributes, 0)
    var mask = sigset_t()
    sigemptyset(&mask)
    posix_spawnattr_setsigmask(&attributes, &mask)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for signal in [SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2] { sigaddset(&defaults, signal) }
    posix_spawnattr_setsigdefault(&attributes, &defaults)

    // The C strings live until posix_spawn returned: the child has its own copy by then.
    let argv = CStringArray(arguments)
    let envp = CStringArray(environment.map { "\($0.key)=\($0.value)" })
    var child: pid_t = 0
    let result =
      arguments[0].contains("/")
      ? posix_spawn(&child, arguments[0], &actions, &attributes, argv.pointers, envp.pointers)
      : posix_spawnp(&child, arguments[0], &actions, &attributes, argv.pointers, envp.pointers)
    guard result == 0 else {
      for fd in [inputFDs[0], outputFDs[0]] where fd >= 0 { close(fd) }
      throw EventError("cannot start \(arguments[0]): \(String(cString: strerror(result)))")
    }
    pid = child
    if case .bytes(let bytes) = input {
      let parent = inputFDs[0]
      _ = fcntl(parent, F_SETFL, O_NONBLOCK)
      bytes.prefix(Self.maxInput).withUnsafeBytes { buffer in
        var offset = 0
        while offset < buffer.count {
          let n = send(parent, buffer.baseAddress! + offset, buffer.count - offset, Int32(MSG_NOSIGNAL))
          if n < 0 && errno == EINTR { continue }
          if n <= 0 { break }
          offset += n
        }
      }
      close(parent)
    }
    if outputFDs[0] >= 0 { outputFD = outputFDs[0] }
  }

  deinit {
    if let outputFD { close(outputFD) }
    // Never leave a zombie behind: a child still running is killed, then reaped.
    if exit == nil {
      kill()
      _ = waitForExit()
    }
  }

  /// Reaps the child if it has ended; nil while it runs. Never blocks.
  @discardableResult
  public func poll() -> Exit? {
    if let exit { return exit }
    var status: Int32 = 0
    let result = waitpid(pid, &status, WNOHANG)
    if result == pid {
      exit = Self.decode(status)
    } else if result < 0 && errno == ECHILD {
      exit = .unknown
    }
    return exit
  }

  /// Blocks until the child ends (for the CLI, and after a kill).
  public func waitForExit() -> Exit {
    if let exit { return exit }
    var status: Int32 = 0
    while true {
      let result = waitpid(pid, &status, 0)
      if result == pid {
        exit = Self.decode(status)
        break
      }
      if result < 0 && errno == EINTR { continue }
      exit = .unknown
      break
    }
    return exit!
  }

  /// SIGKILL to the child's whole process group (the shell and what it started).
  public func kill() {
    guard exit == nil else { return }
    if Glibc.kill(-pid, SIGKILL) != 0 { _ = Glibc.kill(pid, SIGKILL) }
  }

  /// Reads the captured output until end of file (blocking); at most `limit` bytes per call.
  public func readOutput(into buffer: inout [UInt8], limit: Int) -> Int {
    guard let outputFD else { return 0 }
    return buffer.withUnsafeMutableBytes { raw in
      while true {
        let n = read(outputFD, raw.baseAddress!, min(limit, raw.count))
        if n < 0 && errno == EINTR { continue }
        return max(n, 0)
      }
    }
  }

  /// The `wait` status decoded (WIFEXITED/WEXITSTATUS and WTERMSIG are macros Swift cannot see).
  static func decode(_ status: Int32) -> Exit {
    let signal = status & 0x7F
    return signal == 0 ? .exited((status >> 8) & 0xFF) : .signalled(signal)
  }
}

/// A NULL-terminated array of C strings for argv/envp, freed with the value.
private final class CStringArray {
  let pointers: [UnsafeMutablePointer<CChar>?]

  init(_ strings: [String]) { pointers = strings.map { strdup($0) } + [nil] }

  deinit { for pointer in pointers { free(pointer) } }
}
