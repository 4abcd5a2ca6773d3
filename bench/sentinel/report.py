#!/usr/bin/env python3
"""Helpers for bench/sentinel (spec shared/specs/sentinel.md §8, SEN-R50). Standard library only.

Usage:
  report.py wrk FILE KEY=VALUE...      parse `wrk --latency` text, print one JSON record.
  report.py oha FILE KEY=VALUE...      parse `oha --output-format json`, print one JSON record.
  report.py oha-errors FILE            print "RESPONSES NON2XX SOCKET_ERRORS {detail}".
  report.py mem PID...                 print "PSS_KIB RSS_KIB" summed over the processes
                                       (/proc/PID/smaps_rollup).
  report.py cpustat CPU                print "TOTAL IDLE" jiffies of one CPU (/proc/stat).
  report.py show                       print the JSON record on stdin as one progress line.
  report.py summary RESULTS META OUT   medians, ratios ours/peer, verdict; writes OUT (JSON).
"""

import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from benchparse import fmt, kv_args, med, ms  # noqa: E402

SERVERS = ("sentinel", "nginx", "haproxy")
PEERS = ("nginx", "haproxy")
CPU_BUSY_MIN = 0.90






def cmd_wrk(path, extra):
    text = open(path).read()
    rec = {"tool": "wrk"}
    rec.update(kv_args(extra))
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not m:
        rec["error"] = "no Requests/sec in wrk output: " + text[-300:].replace("\n", " ")
        print(json.dumps(rec))
        return
    rec["rps"] = float(m.group(1))
    for pct in ("50", "90", "99"):
        p = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", text, re.M)
        rec[f"p{pct}_ms"] = ms(p.group(1)) if p else None
    a = re.search(r"^\s+Latency\s+(\S+)", text, re.M)
    rec["mean_ms"] = ms(a.group(1)) if a else None
    n = re.search(r"(\d+) requests in", text)
    rec["requests"] = int(n.group(1)) if n else None
    non = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    rec["non2xx"] = int(non.group(1)) if non else 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    rec["socket_errors"] = sum(int(x) for x in sock.groups()) if sock else 0
    print(json.dumps(rec))


def oha_counts(d):
    status = d.get("statusCodeDistribution", {}) or {}
    # Requests cut off by -z at the deadline are expected; every other entry is an error.
    errs = {k: v for k, v in (d.get("errorDistribution", {}) or {}).items() if "deadline" not in k}
    responses = sum(status.values())
    non2xx = sum(v for k, v in status.items() if not str(k).startswith("2"))
    return status, errs, responses, non2xx


def cmd_oha(path, extra):
    rec = {"tool": "oha"}
    rec.update(kv_args(extra))
    try:
        d = json.load(open(path))
    except (OSError, ValueError) as e:
        rec["error"] = f"unreadable oha output: {e}"
        print(json.dumps(rec))
        return
    s = d.get("summary", {})
    lp = d.get("latencyPercentiles", {})
    rec["rps"] = s.get("requestsPerSec")
    for k in ("p50", "p90", "p99", "p99.9"):
        v = lp.get(k)
        rec[f"{k}_ms"] = v * 1e3 if v is not None else None
    status, errs, responses, non2xx = oha_counts(d)
    rec["status"] = status
    rec["errors"] = errs
    rec["requests"] = responses
    rec["non2xx"] = non2xx
    rec["socket_errors"] = sum(errs.values())
    print(json.dumps(rec))


def cmd_oha_errors(path):
    d = json.load(open(path))
    status, errs, responses, non2xx = oha_counts(d)
    detail = json.dumps({"status": status, "errors": errs}, separators=(",", ":"))
    print(responses, non2xx, sum(errs.values()), detail)


def smaps_rollup(pid):
    vals = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            k, _, rest = line.partition(":")
            if k in ("Rss", "Pss"):
                vals[k] = int(rest.split()[0])
    return vals.get("Pss", 0), vals.get("Rss", 0)


def cmd_mem(pids):
    pss = rss = 0
    for pid in pids:
        p, r = smaps_rollup(pid)
        pss += p
        rss += r
    print(pss, rss)


def cmd_cpustat(cpu):
    with open("/proc/stat") as f:
        for line in f:
            parts = line.split()
            if parts[0] == f"cpu{cpu}":
                vals = [int(x) for x in parts[1:]]
                # user nice system idle iowait irq softirq steal (guest is inside user)
                total = sum(vals[:8])
                idle = vals[3] + vals[4]
                print(total, idle)
                return
    sys.exit(f"cpu{cpu} not in /proc/stat")


def cmd_show():
    r = json.loads(sys.stdin.read())
    head = f"  {r['tool']} {r['phase']:<7} {r['server']:<8} round {r['round']}:"
    if "error" in r:
        print(f"{head} ERROR {r['error']}")
    elif r["tool"] == "wrk":
        print(
            f"{head} {r['rps']:>9,.0f} req/s  mean {r['mean_ms'] or 0:6.3f} ms  p99 {r['p99_ms'] or 0:6.2f} ms  "
            f"proxy CPU {r['proxy_cpu']:4.0%}  CPU{r['proxy_cpu_id']} busy {r['cpu_busy']:4.0%}  "
            f"errors {r['non2xx'] + r['socket_errors']}  load {r['load1']}"
        )
    else:
        errs = f"  errors {r['errors']}" if r["errors"] else ""
        print(
            f"{head} {r['rps'] or 0:>9,.0f} req/s at R={r['rate']}  p99 {r['p99_ms'] or 0:6.3f} ms  "
            f"status {r['status']}  proxy CPU {r['cpu_us_per_req']:.2f} µs/req  load {r['load1']}{errs}"
        )






def ratio(a, b):
    return a / b if a is not None and b else None


def cmd_summary(results, meta_path, out):
    recs = [json.loads(l) for l in open(results) if l.strip()]
    meta = json.load(open(meta_path))

    def pick(tool, server):
        return [r for r in recs if r["tool"] == tool and r["server"] == server and r.get("round") != "warm"]

    srv = {}
    for s in SERVERS:
        w, o = pick("wrk", s), pick("oha", s)
        mem = meta.get("memory", {}).get(s, {})
        srv[s] = {
            "peak_rps_rounds": [r.get("rps") for r in w],
            "peak_rps": med(r.get("rps") for r in w),
            "peak_mean_ms": med(r.get("mean_ms") for r in w),
            "peak_p99_ms": med(r.get("p99_ms") for r in w),
            "peak_proxy_cpu": med(r.get("proxy_cpu") for r in w),
            "peak_cpu_busy_rounds": [r.get("cpu_busy") for r in w],
            "p99_ms_rounds": [r.get("p99_ms") for r in o],
            "p99_ms": med(r.get("p99_ms") for r in o),
            "p50_ms": med(r.get("p50_ms") for r in o),
            "fixed_rps": med(r.get("rps") for r in o),
            "cpu_us_per_req": med(r.get("cpu_us_per_req") for r in o),
            "pss_kib": mem.get("pss_kib"),
            "rss_kib": mem.get("rss_kib"),
            "processes": mem.get("processes"),
        }

    problems, inconclusive, ours_errors = [], [], []
    for r in recs:
        if r.get("round") == "warm":
            continue
        bad = "error" in r or r.get("non2xx") or r.get("socket_errors")
        if not bad:
            continue
        what = r.get("error") or f"non-2xx {r.get('non2xx')}, socket errors {r.get('socket_errors')} {r.get('errors', '')}"
        line = f"{r['tool']} {r['phase']} {r['server']} round {r['round']}: {what}"
        (ours_errors if r["server"] == "sentinel" else problems).append(line)
    for r in recs:
        if r["tool"] == "wrk" and r.get("round") != "warm" and r.get("cpu_busy") is not None:
            if r["cpu_busy"] < CPU_BUSY_MIN:
                inconclusive.append(
                    f"CPU {r['proxy_cpu_id']} only {r['cpu_busy']:.0%} busy in peak round {r['round']} of "
                    f"{r['server']} (< {CPU_BUSY_MIN:.0%}: generator-bound)"
                )
    for s in PEERS:
        n = meta.get("peer_log_errors", {}).get(s, 0)
        if n:
            inconclusive.append(f"{s} logged {n} error line(s): {meta.get('peer_log_samples', {}).get(s, '')}")
    inconclusive += [f"peer request errors: {p}" for p in problems]

    o = srv["sentinel"]
    goals = []
    for peer in PEERS:
        p = srv[peer]
        rr = ratio(o["peak_rps"], p["peak_rps"])
        lr = ratio(o["p99_ms"], p["p99_ms"])
        mr = ratio(o["pss_kib"], p["pss_kib"])
        goals += [
            {"metric": "peak req/s", "peer": peer, "ratio": rr, "target": ">= 1.00", "ok": rr is not None and rr >= 1.0},
            {"metric": "p99 at R", "peer": peer, "ratio": lr, "target": "<= 1.00", "ok": lr is not None and lr <= 1.0},
            {"metric": "PSS", "peer": peer, "ratio": mr, "target": "<= 1.00", "ok": mr is not None and mr <= 1.0},
        ]

    def row(label, key, spec, scale=1.0, ratios=True):
        vals = [srv[s][key] for s in SERVERS]
        cells = [fmt(v * scale if v is not None else None, spec) for v in vals]
        rs = [fmt(ratio(vals[0], srv[p][key]), ".2f") if ratios else "" for p in PEERS]
        print(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(rs) + " |")

    print("| metric | sentinel | nginx | HAProxy | sentinel/nginx | sentinel/HAProxy |")
    print("|---|--:|--:|--:|--:|--:|")
    row("peak req/s (wrk, median)", "peak_rps", ",.0f")
    row("wrk mean latency at peak, ms", "peak_mean_ms", ".3f")
    row(f"p99 ms at R = {meta.get('rate')} req/s (oha)", "p99_ms", ".3f")
    row("p50 ms at R (oha)", "p50_ms", ".3f")
    row("PSS MiB after peak (summed)", "pss_kib", ".1f", 1 / 1024)
    row("RSS MiB after peak (summed)", "rss_kib", ".1f", 1 / 1024)
    row("proxy CPU µs/request at R", "cpu_us_per_req", ".2f")
    row("proxy CPU utilisation at peak", "peak_proxy_cpu", ".0%", ratios=False)
    print()
    for s in SERVERS:
        rounds = ", ".join(fmt(x) for x in srv[s]["peak_rps_rounds"])
        busy = ", ".join(fmt(x, ".0%") for x in srv[s]["peak_cpu_busy_rounds"])
        p99s = ", ".join(fmt(x, ".3f") for x in srv[s]["p99_ms_rounds"])
        print(f"{s}: peak rounds [{rounds}] req/s, CPU {meta.get('proxy_cpu')} busy [{busy}]; "
              f"p99 rounds [{p99s}] ms; processes {srv[s]['processes']}")
    print()
    print("| goal (SEN-R50) | vs | ratio | target | result |")
    print("|---|---|--:|---|---|")
    for g in goals:
        print(f"| {g['metric']} | {g['peer']} | {fmt(g['ratio'], '.2f')} | {g['target']} | {'PASS' if g['ok'] else 'FAIL'} |")
    print()
    print(f"sentinel errors: {'none' if not ours_errors else ''}")
    for e in ours_errors:
        print(f"  {e}")
    if meta.get("sentinel_log_warn_lines"):
        print(f"sentinel WARN/ERROR log lines: {meta['sentinel_log_warn_lines']} (first: {meta.get('sentinel_log_sample', '')})")
    all_ok = all(g["ok"] for g in goals) and not ours_errors
    if inconclusive:
        verdict = "INCONCLUSIVE"
        print("INCONCLUSIVE:")
        for i in inconclusive:
            print(f"  {i}")
    else:
        verdict = "PASS" if all_ok else "FAIL"
    print(f"overall: {verdict}")
    doc = {"meta": meta, "servers": srv, "goals": goals, "sentinel_errors": ours_errors,
           "inconclusive": inconclusive, "verdict": verdict, "records": recs}
    with open(out, "w") as f:
        json.dump(doc, f, indent=2)
    print(f"json: {out}")


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "wrk":
        cmd_wrk(args[0], args[1:])
    elif cmd == "oha":
        cmd_oha(args[0], args[1:])
    elif cmd == "oha-errors":
        cmd_oha_errors(args[0])
    elif cmd == "mem":
        cmd_mem(args)
    elif cmd == "cpustat":
        cmd_cpustat(args[0])
    elif cmd == "show":
        cmd_show()
    elif cmd == "summary":
        cmd_summary(args[0], args[1], args[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
