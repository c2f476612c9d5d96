#!/usr/bin/env python3
"""One progress line for a wrk run: progress.py JSON_LINE [NOTE]. Standard library only."""
import json
import sys

r = json.loads(sys.argv[1])
note = f"  [{sys.argv[2]}]" if len(sys.argv) > 2 else ""
if r.get("wrk_failed"):
    print(f"    r{r['round']} {r['scenario']:<11} {r['proxy']:<13} wrk failed{note}")
    sys.exit(0)
n = max(r["requests"], 1)
secs = r["duration_us"] / 1e6
errs = sum(r[k] for k in ("err_status", "err_connect", "err_read", "err_write", "err_timeout"))
tick_us = 1e6 / 100  # CLK_TCK is 100 on Linux
p999 = f"p99.9 {r['p999_us'] / 1000:7.2f} ms  " if "event" in r else ""
print(f"    r{r['round']} {r['scenario']:<11} {r['proxy']:<13} {r['requests'] / secs:>9,.0f} req/s  "
      f"p50 {r['p50_us'] / 1000:6.2f} ms  p99 {r['p99_us'] / 1000:7.2f} ms  {p999}"
      f"CPU {r['cpu_ticks'] * tick_us / n:6.1f} µs/req (upstream {r['upstream_cpu_ticks'] * tick_us / n:.0f}, "
      f"wrk {r['wrk_cpu_ticks'] * tick_us / n:.0f})  cores {r['proxy_core_busy_pct']:3.0f}%/"
      f"{r['aux_core_busy_pct']:3.0f}%  upstream conns {r['upstream_conns']}  "
      f"other {r['other_load_pct']:.0f}%  errors {errs}{note}")
