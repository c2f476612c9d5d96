import Testing

@testable import AuthProxy

/// W3C Trace Context: what is passed through, what is started, what is dropped.
@Suite struct TraceContextTests {
  let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

  func fields(_ pairs: [(String, String)]) -> HTTPFields { HTTPFields(pairs.map { (name: $0.0, value: $0.1) }) }

  @Test func parsesVersion00() {
    let parsed = TraceContext.parse(Array(valid.utf8))
    #expect(parsed?.traceID == "4bf92f3577b34da6a3ce929d0e0e4736")
    #expect(parsed?.flags == "01")
  }

  @Test(arguments: [
    "",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  // no flags
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  // upper case
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  // zero trace-id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  // zero parent-id
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // version ff
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  // version 00 with more
    "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",  // higher version, no dash after
  ])
  func refusesInvalid(value: String) {
    #expect(TraceContext.parse(Array(value.utf8)) == nil)
  }

  @Test func readsAHigherVersionByItsFirstFourParts() {
    let parsed = TraceContext.parse(Array("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds".utf8))
    #expect(parsed?.traceID == "4bf92f3577b34da6a3ce929d0e0e4736")
    #expect(TraceContext.parse(Array("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".utf8)) != nil)
  }

  @Test func aValidParentKeepsTraceIDFlagsAndTracestateWithANewParentID() {
    var random = FastRandom()
    let trace = TraceContext.make(appFields: fields([("traceparent", valid), ("tracestate", "a=1")]), random: &random)
    #expect(trace.traceID == "4bf92f3577b34da6a3ce929d0e0e4736")
    #expect(trace.keepsTracestate)
    let parts = trace.traceparent.split(separator: "-")
    #expect(parts.count == 4)
    #expect(parts[0] == "00" && parts[1] == "4bf92f3577b34da6a3ce929d0e0e4736" && parts[3] == "01")
    #expect(parts[2].count == 16 && parts[2] != "00f067aa0ba902b7")
    #expect(TraceContext.parse(Array(trace.traceparent.utf8)) != nil)
  }

  @Test func noneOrInvalidStartsATraceAndDropsTracestate() {
    var random = FastRandom()
    let started = TraceContext.make(appFields: fields([]), random: &random)
    #expect(!started.keepsTracestate)
    #expect(TraceContext.parse(Array(started.traceparent.utf8))?.traceID == started.traceID)
    let invalid = TraceContext.make(appFields: fields([("traceparent", "garbage"), ("tracestate", "a=1")]), random: &random)
    #expect(!invalid.keepsTracestate)
    #expect(invalid.traceID != started.traceID)
    let twice = TraceContext.make(appFields: fields([("traceparent", valid), ("traceparent", valid)]), random: &random)
    #expect(twice.traceID != "4bf92f3577b34da6a3ce929d0e0e4736", "two traceparent fields are invalid")
  }

  @Test func upstreamHeadCarriesOurTraceparentOnceAndTracestateOnlyWhenValid() {
    var random = FastRandom()
    let rewrite = HeaderRewrite(userAgent: "ua")
    for (parent, keeps) in [(valid, true), ("bogus", false)] {
      let app = fields([("traceparent", parent), ("tracestate", "vendor=x")])
      let trace = TraceContext.make(appFields: app, random: &random)
      let head = String(
        decoding: rewrite.upstreamHead(
          method: "GET", target: "/api/x", host: "h", appFields: app, authorization: Secret("t"), requestID: "r", bodyLength: 0,
          trace: trace), as: UTF8.self)
      #expect(head.components(separatedBy: "traceparent:").count == 2)
      #expect(head.contains("traceparent: \(trace.traceparent)\r\n"))
      #expect(head.contains("tracestate: vendor=x") == keeps)
    }
  }
}
