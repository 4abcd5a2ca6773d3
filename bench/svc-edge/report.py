#!/usr/bin/env python3
"""Parsing, sampling and the final table for bench/svc-edge/run.sh (standard library only).

Subcommands (all called by run.sh):
  sample OUT LABEL=PID...      every 200 ms append "t label pid vmrss_kb rssanon_kb" to OUT
                               until SIGTERM; a PID that exits is dropped.
  cputicks PID                 print utime+stime of PID in clock ticks.
  wrk FILE KEY=VALUE...        parse wrk --latency text, print one JSON record (+ KEY=VALUEs).
  oha FILE KEY=VALUE...        parse oha --output-format json, print one JSON record.
  show                         print the JSON record on stdin as one progress line.
  iperf FILE                   print iperf3 -J receiver throughput in bytes/s.
  summary RESULTS META RSS OUT [--gate]
                               medians, ratios, table; writes OUT (JSON); with --gate
                               exits 1 if a goal fails.
"""

import json
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from benchparse import fmt, kv_args, med, ms  # noqa: E402

RSS_LIMIT_KIB = 64 * 1024




def read_status(pid):
    vals = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "RssAnon:")):
                k, v = line.split(":", 1)
                vals[k] = int(v.split()[0])
    return vals.get("VmRSS", 0), vals.get("RssAnon", 0)


def cmd_sample(out, pairs):
    targets = []
    for p in pairs:
        label, _, pid = p.partition("=")
        targets.append((label, int(pid)))
    stop = False

    def on_term(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    with open(out, "a", buffering=1) as f:
        while not stop and targets:
            now = time.time()
            alive = []
            for label, pid in targets:
                try:
                    rss, anon = read_status(pid)
                except OSError:
                    continue
                alive.append((label, pid))
                f.write(f"{now:.3f}\t{label}\t{pid}\t{rss}\t{anon}\n")
            targets = alive
            time.sleep(0.2)


def cmd_cputicks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the comm field: state is fields[0]; utime and stime are stat fields 14 and 15.
    print(int(fields[11]) + int(fields[12]))




def size_bytes(v):
    n, unit = re.fullmatch(r"([\d.]+)([KMGT]?B)", v).groups()
    return float(n) * {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}[unit]


def cmd_wrk(path, extra):
    text = open(path).read()
    rec = {"tool": "wrk"}
    rec.update(kv_args(extra))
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not m:
        rec["error"] = "no Requests/sec in wrk output: " + text[-300:]
        print(json.dumps(rec))
        return
    rec["rps"] = float(m.group(1))
    for pct in ("50", "90", "99"):
        p = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", text, re.M)
        rec[f"p{pct}_ms"] = ms(p.group(1)) if p else None
    t = re.search(r"Transfer/sec:\s+(\S+)", text)
    rec["bytes_per_sec"] = size_bytes(t.group(1)) if t else None
    rec["bytes_per_req"] = rec["bytes_per_sec"] / rec["rps"] if t and rec["rps"] else None
    n = re.search(r"(\d+) requests in", text)
    rec["requests"] = int(n.group(1)) if n else None
    non = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    rec["non2xx3xx"] = int(non.group(1)) if non else 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    rec["socket_errors"] = sum(int(x) for x in sock.groups()) if sock else 0
    print(json.dumps(rec))


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
    rec["success_rate"] = s.get("successRate")
    for k in ("p50", "p90", "p99", "p99.9"):
        v = lp.get(k)
        rec[f"{k}_ms"] = v * 1e3 if v is not None else None
    rec["status"] = d.get("statusCodeDistribution", {})
    # Requests cut off by -z at the deadline are expected; anything else is an error.
    errs = {k: v for k, v in d.get("errorDistribution", {}).items() if "deadline" not in k}
    rec["errors"] = errs
    print(json.dumps(rec))


def cmd_iperf(path):
    d = json.load(open(path))
    print(int(d["end"]["sum_received"]["bits_per_second"] / 8))


def cmd_show():
    r = json.loads(sys.stdin.read())
    head = f"  {r['tool']} {r['scenario']:<15} {r['server']:<6} round {r['round']}:"
    if "error" in r:
        print(f"{head} ERROR {r['error']}")
    elif r["tool"] == "wrk":
        print(
            f"{head} {r['rps']:>10,.0f} req/s  p99 {r['p99_ms']:7.2f} ms  {r['bytes_per_req'] or 0:8,.0f} B/req  "
            f"server CPU {r['server_cpu']:4.0%}  errors {r['non2xx3xx'] + r['socket_errors']}  load {r['load1']}"
        )
    else:
        errs = f"  errors {r['errors']}" if r["errors"] else ""
        print(
            f"{head} {r['rps'] or 0:>10,.0f} req/s at R={r['rate']}  p99 {r['p99_ms'] or 0:7.3f} ms  "
            f"status {r['status']}  server CPU {r['server_cpu']:4.0%}  load {r['load1']}{errs}"
        )






def cmd_summary(results, meta_path, rss_path, out, gate):
    recs = [json.loads(l) for l in open(results) if l.strip()]
    meta = json.load(open(meta_path))
    rss = {}
    if os.path.exists(rss_path):
        for line in open(rss_path):
            parts = line.split("\t")
            if len(parts) != 5:
                continue
            _, label, _, vm, anon = parts
            cur = rss.setdefault(label, {"max_vmrss_kib": 0, "max_rssanon_kib": 0, "samples": 0})
            cur["max_vmrss_kib"] = max(cur["max_vmrss_kib"], int(vm))
            cur["max_rssanon_kib"] = max(cur["max_rssanon_kib"], int(anon))
            cur["samples"] += 1

    scenarios = []
    for rec in recs:
        if rec.get("scenario") not in scenarios:
            scenarios.append(rec["scenario"])

    def pick(scn, tool, server):
        return [
            r for r in recs
            if r.get("scenario") == scn and r["tool"] == tool and r["server"] == server
        ]

    problems = []
    for r in recs:
        if "error" in r:
            problems.append(f"{r['scenario']} {r['tool']} {r['server']} round {r.get('round')}: {r['error']}")
        elif r["tool"] == "wrk" and (r["non2xx3xx"] or r["socket_errors"]):
            problems.append(
                f"{r['scenario']} wrk {r['server']} round {r['round']}: "
                f"non-2xx/3xx {r['non2xx3xx']}, socket errors {r['socket_errors']}"
            )
        elif r["tool"] == "oha" and r.get("errors"):
            problems.append(f"{r['scenario']} oha {r['server']} round {r['round']}: {r['errors']}")

    ours_rss = rss.get("ours", {}).get("max_vmrss_kib")
    rss_ok = ours_rss is not None and ours_rss < RSS_LIMIT_KIB
    rows, all_ok = [], True
    ceiling_b = meta.get("loopback_bytes_per_sec")
    for scn in scenarios:
        row = {"scenario": scn}
        for server in ("ours", "nginx"):
            w = pick(scn, "wrk", server)
            o = pick(scn, "oha", server)
            row[server] = {
                "wrk_rps_rounds": [r.get("rps") for r in w],
                "rps_median": med(r.get("rps") for r in w),
                "wrk_p99_ms_median": med(r.get("p99_ms") for r in w),
                "bytes_per_req_median": med(r.get("bytes_per_req") for r in w),
                "server_cpu_util_median": med(r.get("server_cpu") for r in w),
                "server_cpu_us_per_req_median": med(
                    r["server_cpu"] * r["duration_s"] * 1e6 / (r["rps"] * r["duration_s"])
                    for r in w
                    if r.get("server_cpu") is not None and r.get("rps")
                ),
                "oha_p99_ms_rounds": [r.get("p99_ms") for r in o],
                "p99_ms_median": med(r.get("p99_ms") for r in o),
                "oha_rps_median": med(r.get("rps") for r in o),
            }
        o, n = row["ours"], row["nginx"]
        row["rate_R"] = med(r.get("rate") for r in pick(scn, "oha", "ours"))
        peak = n["rps_median"]
        row["rate_capped"] = bool(peak and row["rate_R"] and row["rate_R"] < int(0.7 * peak))
        row["throughput_ratio"] = o["rps_median"] / n["rps_median"] if o["rps_median"] and n["rps_median"] else None
        row["p99_ratio"] = (
            o["p99_ms_median"] / n["p99_ms_median"] if o["p99_ms_median"] and n["p99_ms_median"] else None
        )
        if scn == "range-64k" and ceiling_b:
            for server in ("ours", "nginx"):
                hdr = meta.get(f"range_header_bytes_{server}")
                if hdr:
                    ceil = ceiling_b / (65536 + hdr)
                    row[server]["ceiling_rps"] = ceil
                    row[server]["fraction_of_ceiling"] = (row[server]["rps_median"] or 0) / ceil
        row["throughput_ok"] = row["throughput_ratio"] is not None and row["throughput_ratio"] >= 1.0
        row["p99_ok"] = row["p99_ratio"] is not None and row["p99_ratio"] <= 1.0
        all_ok = all_ok and row["throughput_ok"] and row["p99_ok"]
        rows.append(row)
    all_ok = all_ok and rss_ok and not problems

    print("| scenario | ours req/s | nginx req/s | ratio | R req/s | ours p99 ms | nginx p99 ms | p99 ratio | goal |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|---|")
    for r in rows:
        o, n = r["ours"], r["nginx"]
        goal = "PASS" if r["throughput_ok"] and r["p99_ok"] else (
            "FAIL (" + ", ".join(
                x for x, ok in (("throughput", r["throughput_ok"]), ("p99", r["p99_ok"])) if not ok
            ) + ")"
        )
        print(
            f"| {r['scenario']} | {fmt(o['rps_median'])} | {fmt(n['rps_median'])} | "
            f"{fmt(r['throughput_ratio'], '.2f')} | {fmt(r['rate_R'])}{'*' if r['rate_capped'] else ''} | {fmt(o['p99_ms_median'], '.3f')} | "
            f"{fmt(n['p99_ms_median'], '.3f')} | {fmt(r['p99_ratio'], '.2f')} | {goal} |"
        )
    if any(r["rate_capped"] for r in rows):
        print("* R capped at OHA_RATE_CAP (oha's one-core fixed-rate limit) instead of 0.7 x nginx peak")
    print()
    print("| scenario | ours bytes/req | nginx bytes/req | ours CPU µs/req | nginx CPU µs/req | ours CPU util | nginx CPU util | wrk p99 ms ours / nginx |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|")
    for r in rows:
        o, n = r["ours"], r["nginx"]
        print(
            f"| {r['scenario']} | {fmt(o['bytes_per_req_median'])} | {fmt(n['bytes_per_req_median'])} | "
            f"{fmt(o['server_cpu_us_per_req_median'], '.2f')} | {fmt(n['server_cpu_us_per_req_median'], '.2f')} | "
            f"{fmt(o['server_cpu_util_median'], '.0%')} | {fmt(n['server_cpu_util_median'], '.0%')} | "
            f"{fmt(o['wrk_p99_ms_median'], '.2f')} / {fmt(n['wrk_p99_ms_median'], '.2f')} |"
        )
    print()
    for r in rows:
        if "ceiling_rps" in r["ours"]:
            print(
                f"range-64k loopback ceiling: B = {ceiling_b / 1e9:.2f} GB/s (iperf3, same pinning); "
                f"ours {fmt(r['ours']['rps_median'])} req/s = {r['ours']['fraction_of_ceiling']:.0%} of "
                f"{fmt(r['ours']['ceiling_rps'])}, nginx {fmt(r['nginx']['rps_median'])} req/s = "
                f"{r['nginx']['fraction_of_ceiling']:.0%} of {fmt(r['nginx']['ceiling_rps'])}"
            )
    for label, v in sorted(rss.items()):
        print(
            f"max RSS {label}: VmRSS {v['max_vmrss_kib'] / 1024:.1f} MiB, RssAnon "
            f"{v['max_rssanon_kib'] / 1024:.1f} MiB ({v['samples']} samples at 200 ms)"
        )
    print(f"memory goal (ours VmRSS < 64 MiB): {'PASS' if rss_ok else 'FAIL'}")
    if meta.get("ours_ready_ms") is not None:
        print(f"startup: ours ready after {meta['ours_ready_ms']} ms (goal <= 2000 ms)")
    print(f"errors: {'none' if not problems else ''}")
    for p in problems:
        print(f"  {p}")
    print(f"overall: {'PASS' if all_ok else 'FAIL'}")

    doc = {"meta": meta, "rss": rss, "rss_ok": rss_ok, "scenarios": rows, "problems": problems,
           "pass": all_ok, "records": recs}
    with open(out, "w") as f:
        json.dump(doc, f, indent=2)
    print(f"json: {out}")
    if gate and not all_ok:
        sys.exit(1)


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "sample":
        cmd_sample(args[0], args[1:])
    elif cmd == "cputicks":
        cmd_cputicks(args[0])
    elif cmd == "wrk":
        cmd_wrk(args[0], args[1:])
    elif cmd == "oha":
        cmd_oha(args[0], args[1:])
    elif cmd == "show":
        cmd_show()
    elif cmd == "iperf":
        cmd_iperf(args[0])
    elif cmd == "summary":
        cmd_summary(args[0], args[1], args[2], args[3], "--gate" in args[4:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
