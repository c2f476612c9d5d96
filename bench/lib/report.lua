-- wrk hook: at the end of a run, print one machine-readable line for bench/run.
-- Only done() is defined: a response() hook would make wrk parse every response in Lua and
-- slow the load generator down.
--
-- With BENCH_HISTOGRAM=FILE in the environment it also writes the whole latency histogram there,
-- one "microseconds count" line per value seen, so that several runs can be pooled (bench/run's
-- refresh/rotation stage).
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
  local path = os.getenv("BENCH_HISTOGRAM")
  if path and path ~= "" then
    local f = assert(io.open(path, "w"))
    for i = 1, #latency do
      local value, count = latency(i)
      f:write(string.format("%d %d\n", value, count))
    end
    f:close()
  end
end
