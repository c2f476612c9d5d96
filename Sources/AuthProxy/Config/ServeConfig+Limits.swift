extension ServeConfig {
  /// `--max-upstream-concurrency`, `--rate-limit` and `--rate-burst`, each problem naming its flag.
  static func parseLimits(value: (String) -> String?, source: (String) -> String, problems: inout [String]) -> UpstreamLimits {
    var limits = UpstreamLimits()
    if let text = value("max-upstream-concurrency") {
      if let n = Int(text), (1...1_000_000).contains(n) {
        limits.maxConcurrency = n
      } else {
        problems.append("\(source("max-upstream-concurrency")): '\(text)' is not a number of requests from 1 to 1000000")
      }
    }
    if let text = value("rate-limit") {
      if let rate = UpstreamLimits.parseRate(text) {
        limits.ratePerSecond = rate
      } else {
        problems.append("\(source("rate-limit")): '\(text)' is not a rate; write it like 10/s, 600/m or 3600/h (more than 0)")
      }
    }
    if let text = value("rate-burst") {
      if let n = Int(text), (1...1_000_000).contains(n) {
        limits.burst = n
        if value("rate-limit") == nil { problems.append("\(source("rate-burst")): needs --rate-limit") }
      } else {
        problems.append("\(source("rate-burst")): '\(text)' is not a number of requests from 1 to 1000000")
      }
    }
    return limits
  }
}
