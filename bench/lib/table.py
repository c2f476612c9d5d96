#!/usr/bin/env python3
"""Turns bench/run's raw results into the report.

  table.py RESULTS_JSONL META_JSON

RESULTS_JSONL: one object per wrk run (proxy, scenario, round, wrk's numbers, CPU ticks of the
proxy's processes, per-core busy time). META_JSON: run settings, start-up trials, RSS figures,
liveness at the end. Standard library only.
"""
import json
import random
import statistics
import sys

PROXIES = [("nginx", "nginx"), ("haproxy", "HAProxy"), ("authproxy", "authproxy"),
           ("nginx-2w", "nginx 2w"), ("haproxy-2t", "HAProxy 2t"), ("authproxy-w2", "authproxy -w2")]
C10K = [("haproxy-c10k", "HAProxy"), ("authproxy-c10k", "authproxy")]
PEERS = [("nginx", "nginx"), ("haproxy", "HAProxy")]


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt_ms(us):
    return "-" if us is None else (f"{us / 1000:.2f}" if us < 100_000 else f"{us / 1000:.0f}")


def fmt_rate(x):
    return "-" if x is None else f"{x:,.0f}"


def fmt_ratio(a, b):
    return "n/a" if a is None or not b else f"{a / b:.2f}x"


def mib(kb):
    return "-" if kb is None else f"{kb / 1024:.1f}"


def read_histogram(out_dir, rel):
    """wrk's latency histogram of one run (bench/lib/report.lua): [(microseconds, count)]."""
    if not rel:
        return []
    try:
        with open(f"{out_dir}/{rel}") as f:
            return [tuple(int(x) for x in line.split()) for line in f if line.strip()]
    except (FileNotFoundError, ValueError):
        return []


def pool_histograms(histograms):
    pooled = {}
    for h in histograms:
        for value, count in h:
            pooled[value] = pooled.get(value, 0) + count
    return sorted(pooled.items())


def percentile(histogram, p):
    """The smallest value with at least p % of the samples at or below it (wrk's definition)."""
    total = sum(c for _, c in histogram)
    if not total:
        return None
    wanted, seen = p / 100 * total, 0
    for value, count in histogram:
        seen += count
        if seen >= wanted:
            return value
    return histogram[-1][0]


def split_ratios(histograms, n, p, trials=200):
    """How far apart two groups of windows fall with no event at all: the ratio of the pooled
    p-th percentiles of n windows picked at random to that of the others, over `trials` random
    splits (a fixed seed: the same report twice). Returns the 5th and 95th percentiles of the
    ratios, or None with fewer than two windows a side or no histograms."""
    if n < 2 or len(histograms) - n < 2 or not all(histograms):
        return None
    rnd, ratios = random.Random(22), []
    for _ in range(trials):
        order = list(range(len(histograms)))
        rnd.shuffle(order)
        a = percentile(pool_histograms([histograms[i] for i in order[:n]]), p)
        b = percentile(pool_histograms([histograms[i] for i in order[n:]]), p)
        ratios.append(a / b)
    ratios.sort()
    return ratios[int(0.05 * (trials - 1))], ratios[int(0.95 * (trials - 1))]


def round_ratios(runs, a, b, scenario):
    """req/s of proxy a over proxy b, round by round (the two ran minutes apart at most, so a
    slow spell of the machine weighs on both): [ratio], rounds where either is missing left out."""
    rps = {}
    for r in runs:
        if r.get("scenario") == scenario and r.get("duration_us") and r.get("requests") is not None:
            rps[r["proxy"], r.get("round")] = r["requests"] / (r["duration_us"] / 1e6)
    return [rps[a, n] / rps[b, n] for (p, n) in sorted(rps, key=str) if p == a and (b, n) in rps and rps[b, n]]


def median_band(xs, trials=2000):
    """5th and 95th percentiles of the median of xs resampled with replacement (a fixed seed):
    how far the median of this many rounds moves with the rounds' own spread. None under 3."""
    if len(xs) < 3:
        return None
    rnd = random.Random(22)
    meds = sorted(statistics.median(rnd.choices(xs, k=len(xs))) for _ in range(trials))
    return meds[int(0.05 * (trials - 1))], meds[int(0.95 * (trials - 1))]


def instructions_per_request(meta):
    """{proxy: instructions per request} from the callgrind stage (BENCH_INSTRUCTIONS=1), if it ran."""
    out = {}
    for proxy, m in (meta.get("instructions") or {}).items():
        if m and m.get("requests"):
            out[proxy] = m["instructions"] / m["requests"]
    return out


def main(results_path, meta_path):
    with open(meta_path) as f:
        meta = json.load(f)
    runs = []
    with open(results_path) as f:
        for line in f:
            if line.strip():
                runs.append(json.loads(line))

    discarded = []
    try:
        with open(results_path.rsplit("/", 1)[0] + "/discarded.jsonl") as f:
            discarded = [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        pass

    scenarios = meta["scenarios"]  # [{"name","label"}...] in display order
    clk = meta.get("clk_tck", 100)

    # Aggregate per proxy and scenario over rounds.
    agg = {}
    for r in runs:
        a = agg.setdefault((r["proxy"], r["scenario"]), {
            "rps": [], "p50": [], "p99": [], "req": 0, "ticks": 0, "wall": 0.0,
            "errors": {"non2xx3xx": 0, "connect": 0, "read": 0, "write": 0, "timeout": 0},
            "aux": [], "mbps": [], "up_ticks": 0, "up_req": 0, "up_conns": []})
        secs = r["duration_us"] / 1e6 if r.get("duration_us") else None
        if secs and r.get("requests") is not None:
            a["rps"].append(r["requests"] / secs)
            a["mbps"].append(r["bytes"] / secs / 2**20)
        a["p50"].append(r.get("p50_us"))
        a["p99"].append(r.get("p99_us"))
        a["req"] += r.get("requests") or 0
        a["ticks"] += r.get("cpu_ticks") or 0
        a["wall"] += secs or 0
        a["aux"].append(r.get("aux_core_busy_pct"))
        a["up_ticks"] += r.get("upstream_cpu_ticks") or 0
        a["up_req"] += r.get("upstream_requests") or 0
        a["up_conns"].append(r.get("upstream_conns"))
        e = a["errors"]
        e["non2xx3xx"] += r.get("err_status", 0)
        for k in ("connect", "read", "write", "timeout"):
            e[k] += r.get("err_" + k, 0)
        if r.get("wrk_failed"):
            a["failed"] = a.get("failed", 0) + 1

    def stat(p, s):
        a = agg.get((p, s))
        if not a:
            return None
        cpu_us = a["ticks"] * 1e6 / clk
        return {
            "rps": med(a["rps"]), "p50": med(a["p50"]), "p99": med(a["p99"]),
            "mbps": med(a["mbps"]),
            "cpu_us_per_req": cpu_us / a["req"] if a["req"] else None,
            "cpu_pct": 100 * cpu_us / 1e6 / a["wall"] if a["wall"] else None,
            "aux": med(a["aux"]), "errors": a["errors"], "runs": len(a["rps"]),
            "up_cpu_us_per_req": a["up_ticks"] * 1e6 / clk / a["up_req"] if a["up_req"] else None,
            "up_conns": med(a["up_conns"]),
            "failed": a.get("failed", 0),
        }

    out = []
    w = out.append
    w("")
    w(f"authproxy benchmark — {meta['date']} — commit {meta['commit']} — "
      f"{meta['rounds']} round(s) x {meta['seconds']} s per run, interleaved")
    w(f"CPUs: proxy under test on core {meta['proxy_cpu']}, upstream nginx + wrk on core "
      f"{meta['aux_cpu']}; nginx 2 workers, HAProxy nbthread 2, authproxy --workers 2 on cores "
      f"{meta['w2_cpus']}; wrk -t1; all on 127.0.0.1")
    w("Medians over rounds. CPU/req = utime+stime of the proxy's processes over all measured "
      "runs / requests served;")
    w("proxy CPU = its CPU time / wall time (100% = one core); aux core = busy % of the "
      "upstream+wrk core (near 100%: the")
    w("load side, not the proxy, limited req/s); up conns = TLS connections the upstream accepted "
      "per run; up µs/req = upstream CPU per request.")
    w("")
    hdr = (f"{'scenario':<16} {'proxy':<14} {'req/s':>9} {'MiB/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
           f"{'CPU µs/req':>10} {'proxy CPU':>9} {'aux core':>8} {'up conns':>8} {'up µs/req':>9} {'errors':>7}")
    w(hdr)
    w("-" * len(hdr))
    all_errors = []
    for sc in scenarios:
        for i, (p, label) in enumerate(PROXIES):
            s = stat(p, sc["name"])
            if s is None:
                continue
            e = s["errors"]
            nerr = sum(e.values())
            if nerr or s["failed"]:
                detail = ", ".join(f"{k} {v}" for k, v in e.items() if v)
                if s["failed"]:
                    detail += (", " if detail else "") + f"{s['failed']} wrk run(s) failed"
                all_errors.append(f"{label} {sc['label']}: {detail}")
            w(f"{sc['label'] if i == 0 else '':<16} {label:<14} {fmt_rate(s['rps']):>9} "
              f"{s['mbps']:>7.1f} {fmt_ms(s['p50']):>7} {fmt_ms(s['p99']):>7} "
              f"{(s['cpu_us_per_req'] or 0):>10.1f} "
              f"{(s['cpu_pct'] or 0):>8.0f}% {(s['aux'] or 0):>7.0f}% "
              f"{'-' if s['up_conns'] is None else format(s['up_conns'], '.0f'):>8} "
              f"{'-' if s['up_cpu_us_per_req'] is None else format(s['up_cpu_us_per_req'], '.1f'):>9} {nerr:>7}")
        w("")

    procs = meta.get("procs", {})
    w(f"{'memory':<16} {'proxy':<14} {'idle RSS MiB':>12} {'peak RSS MiB (VmHWM)':>21}  "
      f"RSS after each round (MiB)")
    for p, label in PROXIES:
        m = procs.get(p)
        if not m:
            continue
        trend = " ".join(mib(x) for x in m.get("rss_after_round_kb", []))
        w(f"{'':<16} {label:<14} {mib(m.get('idle_rss_kb')):>12} {mib(m.get('peak_rss_kb')):>21}  {trend}")
    w("  (nginx: its one worker process; the master is idle. HAProxy and authproxy: one process.)")
    w("")

    memory = meta.get("memory") or {}
    if memory:
        w(f"{'memory checks':<16} {'proxy':<14} {'RSS MiB, 1000 conns':>20} {'RSS growth MiB, 1 GiB slow reader':>34}")
        for p, label in PROXIES:
            m = memory.get(p)
            if not m:
                continue
            c, s = m.get("conns") or {}, m.get("slow") or {}
            held = mib(c.get("rss_held_kb")) if c.get("ok") == c.get("connections") else "failed"
            grew = (mib(s["rss_peak_kb"] - s["rss_before_kb"])
                    if s.get("rss_peak_kb") and s.get("bytes") == s.get("expected") else "failed")
            w(f"{'':<16} {label:<14} {held:>20} {grew:>34}")
        w("  (1000: keep-alive client connections held open together after one small GET each;"
          " slow reader: one 1 GiB response read at 128 MiB/s, growth = highest RSS while it streamed - RSS before)")
        w("")

    c10k = meta.get("c10k") or {}
    c10k_stats = {}
    if c10k:
        n = meta.get("c10k_conns", 10000)
        w(f"{n:,} keep-alive clients (200 B, wrk -c{n}, 1 worker/thread each on core {meta['proxy_cpu']}, "
          f"started for this stage only)")
        w(f"{'':<16} {'proxy':<14} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'CPU µs/req':>10} "
          f"{'up conns':>8} {'idle RSS MiB':>12} {'peak RSS MiB':>12} {'errors':>7}")
        for p, label in C10K:
            s10 = stat(p, "small-c10k")
            m = c10k.get(p) or {}
            if s10 is None:
                continue
            nerr = sum(s10["errors"].values())
            if nerr or s10["failed"]:
                all_errors.append(f"{label} {n:,} clients: "
                                  + ", ".join([f"{k} {v}" for k, v in s10["errors"].items() if v]
                                              + (["wrk did not finish (stopped at its time limit)"] if s10["failed"] else [])))
            if not s10["rps"]:  # no request answered in the measured run: no latency to show
                s10 = dict(s10, p50=None, p99=None)
                if not s10["failed"]:
                    all_errors.append(f"{label} {n:,} clients: no request answered in the measured run")
            c10k_stats[p] = dict(s10, peak_rss_kb=m.get("peak_rss_kb"), errors_total=nerr)
            w(f"{'':<16} {label:<14} {fmt_rate(s10['rps']):>9} {fmt_ms(s10['p50']):>7} {fmt_ms(s10['p99']):>7} "
              f"{(s10['cpu_us_per_req'] or 0):>10.1f} "
              f"{'-' if s10['up_conns'] is None else format(s10['up_conns'], '.0f'):>8} {mib(m.get('idle_rss_kb')):>12} "
              f"{mib(m.get('peak_rss_kb')):>12} {nerr:>7}")
        w("  (peak RSS: VmHWM reset right before the warm-up, read after the measured run)")
        w("")

    out_dir = results_path.rsplit("/", 1)[0]
    events = []
    try:
        with open(out_dir + "/events.jsonl") as f:
            events = [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        pass
    ev_rows = {}  # event -> window kind -> [rows]
    ev_pooled = {}  # (event, window kind) -> the windows' histograms added up
    if events:
        w(f"refresh and rotation (authproxy --workers 1, 200 B, c=32, {meta.get('event_window_s')} s windows; "
          f"each event window after a steady one on the same instance)")
        w(f"{'':<16} {'window':<8} {'req/s':>9} {'p99 ms':>7} {'p99.9 ms':>8} {'max ms':>7} {'errors':>7}  "
          f"{'in the window (from /metrics)':<30}")
        for r in events:
            secs = r["duration_us"] / 1e6 if r.get("duration_us") else 0
            nerr = sum(r.get("err_" + k, 0) for k in ("status", "connect", "read", "write", "timeout"))
            label = f"{r['event']} {r.get('cycle', '')}".strip()
            if nerr or r.get("wrk_failed"):
                all_errors.append(f"{label} {r['window']} window: {nerr} error(s)")
            counted = {k: v for k, v in r.items() if k.endswith("_success")}
            r["histogram_counts"] = read_histogram(out_dir, r.get("histogram"))
            ev_rows.setdefault(r["event"], {}).setdefault(r["window"], []).append(r)
            w(f"{label:<16} {r['window']:<8} {fmt_rate(r['requests'] / secs if secs else None):>9} "
              f"{fmt_ms(r.get('p99_us')):>7} {fmt_ms(r.get('p999_us')):>8} {fmt_ms(r.get('max_us')):>7} {nerr:>7}  "
              + ", ".join(f"{k.replace('_success', '')} +{v}" for k, v in counted.items())
              + (f"  (other processes {r['other_load_pct']:.0f}%)" if r.get("other_load_pct", 0) > 15 else ""))
        w(f"{'pooled':<16} {'windows':<8} {'requests':>9} {'p99 ms':>7} {'p99.9 ms':>8} {'max ms':>7}  "
          "(the latency histograms of all the windows of one kind added up)")
        for ev, kinds in ev_rows.items():
            for kind, rows in kinds.items():
                pooled = ev_pooled[ev, kind] = pool_histograms([r["histogram_counts"] for r in rows])
                n = sum(c for _, c in pooled)
                w(f"{ev:<16} {f'{len(rows)} {kind}':<8} {n:>9,} {fmt_ms(percentile(pooled, 99)):>7} "
                  f"{fmt_ms(percentile(pooled, 99.9)):>8} {fmt_ms(pooled[-1][0] if pooled else None):>7}")
        w("")

    st = meta.get("startup", {})
    ready = st.get("ready_ms") or []
    w("authproxy start-up: exec to first /readyz 200 (includes the login to the upstream): "
      + (f"median {med(ready):.0f} ms over {len(ready)} starts ({', '.join(f'{x:.0f}' for x in ready)})"
         if ready else "not measured"))
    if procs.get("authproxy", {}).get("idle_rss_kb"):
        w(f"authproxy idle RSS after readiness (1 worker): {mib(procs['authproxy']['idle_rss_kb'])} MiB; "
          f"with 2 workers: {mib(procs.get('authproxy-w2', {}).get('idle_rss_kb'))} MiB")
    per_request = instructions_per_request(meta)
    if per_request:
        w("instructions per small request (user space, callgrind, c=32): "
          + ", ".join(f"{p} {n / 1000:.1f}k" for p, n in per_request.items())
          + (f"; authproxy/HAProxy {per_request['authproxy'] / per_request['haproxy']:.2f}x"
             if "authproxy" in per_request and "haproxy" in per_request else ""))
    w("")

    # Summary block of ratios.
    w("=" * 78)
    w("SUMMARY  authproxy (--workers 1) relative to nginx and HAProxy (1 worker each)")
    w("  req/s: >1 is better for authproxy; p99, CPU/req, RSS: <1 is better for authproxy")
    w("=" * 78)
    w(f"{'scenario':<16} {'req/s vs':>17} {'p99 vs':>17} {'CPU/req vs':>17} {'-w2/-w1':>8}")
    w(f"{'':<16} {'nginx':>8} {'HAProxy':>8} {'nginx':>8} {'HAProxy':>8} {'nginx':>8} {'HAProxy':>8} {'req/s':>8}")
    summary = {}
    for sc in scenarios:
        a = stat("authproxy", sc["name"])
        if a is None:
            continue
        n, h = stat("nginx", sc["name"]), stat("haproxy", sc["name"])
        a2 = stat("authproxy-w2", sc["name"])
        row = {
            "rps_vs_nginx": fmt_ratio(a["rps"], n and n["rps"]),
            "rps_vs_haproxy": fmt_ratio(a["rps"], h and h["rps"]),
            "p99_vs_nginx": fmt_ratio(a["p99"], n and n["p99"]),
            "p99_vs_haproxy": fmt_ratio(a["p99"], h and h["p99"]),
            "cpu_vs_nginx": fmt_ratio(a["cpu_us_per_req"], n and n["cpu_us_per_req"]),
            "cpu_vs_haproxy": fmt_ratio(a["cpu_us_per_req"], h and h["cpu_us_per_req"]),
            "w2_vs_w1": fmt_ratio(a2 and a2["rps"], a["rps"]),
        }
        summary[sc["name"]] = row
        w(f"{sc['label']:<16} {row['rps_vs_nginx']:>8} {row['rps_vs_haproxy']:>8} "
          f"{row['p99_vs_nginx']:>8} {row['p99_vs_haproxy']:>8} {row['cpu_vs_nginx']:>8} "
          f"{row['cpu_vs_haproxy']:>8} {row['w2_vs_w1']:>8}")
    pk = {p: procs.get(p, {}).get("peak_rss_kb") for p, _ in PROXIES}
    idle = {p: procs.get(p, {}).get("idle_rss_kb") for p, _ in PROXIES}
    w(f"{'peak RSS':<16} {fmt_ratio(pk['authproxy'], pk['nginx']):>8} "
      f"{fmt_ratio(pk['authproxy'], pk['haproxy']):>8}")
    w(f"{'idle RSS':<16} {fmt_ratio(idle['authproxy'], idle['nginx']):>8} "
      f"{fmt_ratio(idle['authproxy'], idle['haproxy']):>8}")
    if ready:
        w(f"start-up to ready: {med(ready):.0f} ms;  idle RSS: {mib(idle['authproxy'])} MiB")
    w("-" * 78)
    w("authproxy --workers 2 relative to nginx 2 workers and HAProxy nbthread 2 (cores "
      f"{meta['w2_cpus']})")
    w(f"{'scenario':<16} {'req/s vs':>17} {'p99 vs':>17} {'CPU/req vs':>17}")
    w(f"{'':<16} {'nginx 2w':>8} {'HAP 2t':>8} {'nginx 2w':>8} {'HAP 2t':>8} {'nginx 2w':>8} {'HAP 2t':>8}")
    summary_w2 = {}
    for sc in scenarios:
        a = stat("authproxy-w2", sc["name"])
        if a is None:
            continue
        n, h = stat("nginx-2w", sc["name"]), stat("haproxy-2t", sc["name"])
        row = {
            "rps_vs_nginx_2w": fmt_ratio(a["rps"], n and n["rps"]),
            "rps_vs_haproxy_2t": fmt_ratio(a["rps"], h and h["rps"]),
            "p99_vs_nginx_2w": fmt_ratio(a["p99"], n and n["p99"]),
            "p99_vs_haproxy_2t": fmt_ratio(a["p99"], h and h["p99"]),
            "cpu_vs_nginx_2w": fmt_ratio(a["cpu_us_per_req"], n and n["cpu_us_per_req"]),
            "cpu_vs_haproxy_2t": fmt_ratio(a["cpu_us_per_req"], h and h["cpu_us_per_req"]),
        }
        for peer, key in (("nginx-2w", "nginx_2w"), ("haproxy-2t", "haproxy_2t")):
            ratios = round_ratios(runs, "authproxy-w2", peer, sc["name"])
            band = median_band(ratios)
            row[f"rps_vs_{key}_per_round"] = [round(x, 3) for x in ratios]
            row[f"rps_vs_{key}_round_median"] = round(med(ratios), 3) if ratios else None
            row[f"rps_vs_{key}_round_median_5_95"] = [round(band[0], 3), round(band[1], 3)] if band else None
        summary_w2[sc["name"]] = row
        w(f"{sc['label']:<16} {row['rps_vs_nginx_2w']:>8} {row['rps_vs_haproxy_2t']:>8} "
          f"{row['p99_vs_nginx_2w']:>8} {row['p99_vs_haproxy_2t']:>8} {row['cpu_vs_nginx_2w']:>8} "
          f"{row['cpu_vs_haproxy_2t']:>8}")
    w("  req/s round by round (each ratio within one round), median and the 5-95 % band of that median:")
    for sc in scenarios:
        row = summary_w2.get(sc["name"])
        if not row:
            continue
        parts = []
        for key, label in (("nginx_2w", "nginx 2w"), ("haproxy_2t", "HAP 2t")):
            ratios, band = row[f"rps_vs_{key}_per_round"], row[f"rps_vs_{key}_round_median_5_95"]
            if ratios:
                parts.append(f"vs {label} {row[f'rps_vs_{key}_round_median']:.2f}x"
                             + (f" ({band[0]:.2f}-{band[1]:.2f})" if band else "")
                             + f" over {len(ratios)}")
        w(f"  {sc['label']:<14} " + "; ".join(parts))
    summary_c10k = {}
    a10 = c10k_stats.get("authproxy-c10k")
    if a10:
        w("-" * 78)
        h10, n10 = c10k_stats.get("haproxy-c10k"), c10k_stats.get("nginx-c10k")
        summary_c10k = {
            "authproxy_peak_rss_mib": a10["peak_rss_kb"] / 1024 if a10.get("peak_rss_kb") else None,
            "authproxy_errors": a10["errors_total"],
            "p99_vs_haproxy": fmt_ratio(a10["p99"], h10 and h10["p99"]),
            "p99_vs_nginx": fmt_ratio(a10["p99"], n10 and n10["p99"]),
            "rps_vs_haproxy": fmt_ratio(a10["rps"], h10 and h10["rps"]),
            "rps_vs_nginx": fmt_ratio(a10["rps"], n10 and n10["rps"]),
            "peak_rss_vs_haproxy": fmt_ratio(a10.get("peak_rss_kb"), h10 and h10.get("peak_rss_kb")),
        }
        w(f"{meta.get('c10k_conns', 10000):,} clients: authproxy peak RSS {mib(a10.get('peak_rss_kb'))} MiB "
          f"(goal <= 96), errors {a10['errors_total']} (goal 0), p99 vs HAProxy {summary_c10k['p99_vs_haproxy']} "
          f"(goal <= 1); req/s vs HAProxy {summary_c10k['rps_vs_haproxy']}, peak RSS vs HAProxy "
          f"{summary_c10k['peak_rss_vs_haproxy']}")
    summary_events = {}
    for ev, kinds in ev_rows.items():
        steady, event = kinds.get("steady", []), kinds.get("event", [])
        if not steady or not event:
            continue
        p_steady = percentile(ev_pooled[ev, "steady"], 99.9)
        p_event = percentile(ev_pooled[ev, "event"], 99.9)
        if p_steady is None or p_event is None:  # no histograms (BENCH_HISTOGRAM unsupported): each window's own
            p_steady, p_event = med([r.get("p999_us") for r in steady]), med([r.get("p999_us") for r in event])
        steady_own = [r.get("p999_us") for r in steady if r.get("p999_us") is not None]
        noise = split_ratios([r["histogram_counts"] for r in steady + event], len(event), 99.9)
        cname = next((k for k in event[0] if k.endswith("_success") and k != "logouts_success"), None)
        missed = [r.get("cycle") for r in event if not (cname and r.get(cname, 0) >= 1)]
        strays = [r.get("cycle") for r in steady if cname and r.get(cname, 0) > 0]
        summary_events[ev] = {
            "windows": len(event),
            "p999_steady_us": p_steady, "p999_event_us": p_event,
            "p999_ratio": fmt_ratio(p_event, p_steady),
            "steady_window_p999_us": [min(steady_own), max(steady_own)] if steady_own else None,
            "random_split_ratio_5_95": [round(noise[0], 3), round(noise[1], 3)] if noise else None,
            "within_noise": bool(noise) and p_event / p_steady <= noise[1],
            "happened_in_window": not missed,
            "logouts_in_window": sum(r.get("logouts_success", 0) for r in event),
        }
        e = summary_events[ev]
        spread = (f"; random splits of the same {len(steady) + len(event)} windows: {noise[0]:.2f}-{noise[1]:.2f}x "
                  f"(5-95 %), so {'equal within what the windows can tell' if e['within_noise'] else 'ABOVE that'}"
                  if noise else "")
        w(f"{ev}: p99.9 over {len(event)} event windows {fmt_ms(p_event)} ms vs {fmt_ms(p_steady)} ms over "
          f"{len(steady)} steady ones = {e['p999_ratio']} (goal: equal){spread}; "
          + ("each happened inside its window" if not missed else f"NOT seen inside window(s) {missed}")
          + (f", {e['logouts_in_window']} logout(s)" if ev == "rotation" else ""))
        if missed:
            all_errors.append(f"{ev}: /metrics did not count it inside event window(s) {missed}")
        if strays:
            all_errors.append(f"{ev}: /metrics counted one inside steady window(s) {strays}")
    # Errors in runs measured again because the machine was busy still count.
    for r in discarded:
        nerr = sum(r.get("err_" + k, 0) for k in ("status", "connect", "read", "write", "timeout"))
        if nerr:
            all_errors.append(f"{r['proxy']} {r['scenario']} (a discarded run, round {r['round']}): {nerr}")
    other = [r.get("other_load_pct") for r in runs if r.get("other_load_pct") is not None]
    if other:
        w(f"CPU used by other processes on the machine during the runs: median {med(other):.0f}%, "
          f"max {max(other):.0f}% of a core; {len(discarded)} disturbed run(s) measured again"
          + ("  << the machine was not quiet: expect noise" if max(other) > 15 else ""))
    dead = [p for p, m in procs.items() if m.get("alive_at_end") is False]
    checks = meta.get("check_failures", [])
    if all_errors or dead or checks:
        w("PROBLEMS:")
        for x in all_errors:
            w(f"  errors: {x}")
        for p in dead:
            w(f"  {p} was not running at the end (crash?) — see its log in the results folder")
        for x in checks:
            w(f"  check: {x}")
    else:
        w("no errors: every response 2xx, no socket errors or timeouts, every process alive, "
          "bodies checked before and after")
    w("=" * 78)
    print("\n".join(out))
    with open(results_path.rsplit("/", 1)[0] + "/summary.json", "w") as f:
        json.dump({"summary": summary, "summary_w2": summary_w2, "summary_c10k": summary_c10k,
                   "summary_events": summary_events,
                   "stats": {f"{p}/{s['name']}": stat(p, s["name"]) for p, _ in PROXIES for s in scenarios},
                   "c10k": c10k_stats, "events": [{k: v for k, v in r.items() if k != "histogram_counts"} for r in events],
                   "meta": meta}, f, indent=1)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    main(sys.argv[1], sys.argv[2])
