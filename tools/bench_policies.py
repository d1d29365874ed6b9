#!/usr/bin/env python3
"""Policy comparison benchmark: each path policy on the bundled Monaco scenario, without and with RSU crashes.

For every policy, two runs of a copy of maps/default.yaml with a top-level `policy:`, the same run
seed and duration: one without faults, one with N random RSU crashes (random RSU, random start,
3-8 s each; the same schedule for every policy, drawn from --fault-seed). Runs are sequential.
From each run's database it reports, as one Markdown table:
- requests, and how many completed;
- latency p50/p99 of the completed requests;
- deadline-miss rate: share of requests that did not complete within their deadline, leaving out
  those still open when the run or their vehicle's trace ended (failed 'run-ended'/'vehicle-left');
- attempts per request, and compute per completed request (sum of the `compute_ms` counters);
- extra load: attempts/request and compute/request relative to least-expected-latency (else the
  first policy other than hedged) with the same faults;
- cache hits (requests with cache_hit = 1).
Counters or columns the binary does not record are reported as n/a.

Usage: tools/bench-policies [--policies hedged,least-expected-latency,nearest-rsu] [--duration 120]
                            [--speed 1] [--seed 1] [--crashes 20] [--fault-seed 7] [--out DIR] [--report-only]
                            [--fault-mode crash|hang|partition|degrade [--loss 0.3] [--latency-ms 200]]
"""
import argparse
import math
import os
import sqlite3
import sys
import tempfile

from convoy_bench import launch, percentile, random_crashes, write_scenario

BASELINE = "least-expected-latency"


def ended(status, reason):
    """A request the run closed because it, or its vehicle's trace, ended: no verdict on the policy."""
    return status == "failed" and reason is not None and (reason in ("vehicle-left", "run-ended") or reason.startswith("run-ended "))


def measure(database):
    db = sqlite3.connect(database)
    one = lambda sql: db.execute(sql).fetchone()[0]
    m = {"requests": one("SELECT COUNT(*) FROM requests")}
    m["status"] = {s if s is not None else "open": n for s, n in
                   db.execute("SELECT status, COUNT(*) FROM requests GROUP BY status ORDER BY COUNT(*) DESC")}
    m["completed"] = m["status"].get("completed", 0)
    latencies = [v for (v,) in db.execute("SELECT latency_ms FROM requests WHERE status = 'completed' AND latency_ms IS NOT NULL")]
    m["p50"], m["p99"] = percentile(latencies, 0.5), percentile(latencies, 0.99)
    outcomes = db.execute("SELECT status, reason, deadline_met FROM requests").fetchall()
    considered = [(status, met) for status, reason, met in outcomes if not ended(status, reason)]
    m["excluded"] = len(outcomes) - len(considered)
    missed = sum(1 for status, met in considered if not (status == "completed" and met == 1))
    m["miss"] = missed / len(considered) if considered else None
    m["attempts"] = one("SELECT COUNT(*) FROM attempts") / m["requests"] if m["requests"] else None
    rows, total = db.execute("SELECT COUNT(*), SUM(value) FROM counters WHERE name = 'compute_ms'").fetchone()
    m["compute_ms"] = total / m["completed"] if rows and m["completed"] else None
    columns = {row[1] for row in db.execute("PRAGMA table_info(requests)")}
    m["cache_hits"] = one("SELECT COUNT(*) FROM requests WHERE cache_hit = 1") if "cache_hit" in columns else None
    info = dict(db.execute("SELECT key, value FROM run_info"))
    m["policy"] = info.get("policy")
    db.close()
    return m


def fmt(value, spec, scale=1.0):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return format(value if scale == 1.0 else value * scale, spec)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", nargs="+", default=["hedged,least-expected-latency,nearest-rsu"],
                        help="policies, space or comma separated")
    parser.add_argument("--duration", type=float, default=120)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1, help="run seed (the same for every run)")
    parser.add_argument("--crashes", type=int, default=20, help="random RSU crashes in the runs with faults")
    parser.add_argument("--fault-seed", type=int, default=7, help="seed of the crash schedule")
    parser.add_argument("--fault-mode", default="crash", choices=["crash", "hang", "partition", "degrade"],
                        help="what the scheduled RSU faults do (default crash)")
    parser.add_argument("--loss", type=float, default=0.3, help="extra loss of a degrade fault")
    parser.add_argument("--latency-ms", type=float, default=200, help="extra latency of a degrade fault")
    parser.add_argument("--convoy", default=os.path.join(os.path.dirname(__file__), "..", ".build", "release", "convoy"))
    parser.add_argument("--out", help="directory for the runs (default: a new temporary directory)")
    parser.add_argument("--report-only", action="store_true",
                        help="launch nothing: report on the runs already in --out (same policies and settings)")
    args = parser.parse_args()

    policies = []
    for item in args.policies:
        for name in item.split(","):
            if name.strip() and name.strip() not in policies:
                policies.append(name.strip())
    if not policies:
        parser.error("no policies given")
    if args.out:
        directory = os.path.abspath(args.out)
        os.makedirs(directory, exist_ok=True)
    else:
        directory = tempfile.mkdtemp(prefix="convoy-policies-")
    crashes = random_crashes(args.crashes, args.duration, args.fault_seed)
    mode = args.fault_mode
    extra = {"loss": args.loss, "latency_ms": args.latency_ms} if mode == "degrade" else None
    faulted = f"{len(crashes)} {mode}s" if mode != "degrade" else f"{len(crashes)} degrades"
    settings = [("none", "no-faults", []), (faulted, "crashes" if mode == "crash" else mode, crashes)]
    planned = [(policy, label, tag, faults, os.path.join(directory, f"{policy}-{tag}"))
               for policy in policies for label, tag, faults in settings]
    if args.report_only and not args.out:
        parser.error("--report-only needs --out")
    for *_, run in planned:
        if os.path.exists(os.path.join(run, "run.sqlite")) != args.report_only:
            if args.report_only:
                print(f"error: {run} holds no run to report on", file=sys.stderr)
                return 1
            print(f"error: {run} already holds a run; pass another --out", file=sys.stderr)
            return 1

    results = {}
    for i, (policy, label, tag, faults, run) in enumerate(planned, 1):
        if args.report_only:
            database = os.path.join(run, "run.sqlite")
        else:
            print(f"[{i}/{len(planned)}] {policy}, faults: {label} -> {run}", file=sys.stderr, flush=True)
            scenario = write_scenario(run + ".yaml", args.duration, faults, seed=args.seed, policy=policy, mode=mode, extra=extra)
            database = launch(args.convoy, scenario, run, args.speed)
        if database is None:
            print(f"error: the {policy} run ({label}) failed", file=sys.stderr)
            results[(policy, label)] = None
            continue
        results[(policy, label)] = measure(database)
        if results[(policy, label)]["policy"] not in (None, policy):
            print(f"warning: {run} recorded policy {results[(policy, label)]['policy']}, not {policy}", file=sys.stderr)

    baseline = BASELINE if BASELINE in policies else next((p for p in policies if p != "hedged"), None)
    print(f"Monaco, {args.duration:g} s at speed {args.speed:g}, run seed {args.seed}; "
          f"faults: none, or {faulted} of random RSUs, 3-8 s each (fault seed {args.fault_seed}"
          + (f"; loss {args.loss:g}, +{args.latency_ms:g} ms" if extra else "") + ")")
    print()
    print(f"| policy | faults | requests | completed | p50 ms | p99 ms | deadline miss % | attempts/req "
          f"| compute s/req | extra load × (attempts / compute) vs {baseline or 'n/a'} | cache hits |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for policy, label, *_ in planned:
        m = results[(policy, label)]
        if m is None:
            print(f"| {policy} | {label} | run failed | | | | | | | | |")
            continue
        base = results.get((baseline, label))
        if base is None:
            extra = "n/a"
        else:
            ratio = lambda a, b: a / b if a is not None and b else None
            extra = f"{fmt(ratio(m['attempts'], base['attempts']), '.2f')} / {fmt(ratio(m['compute_ms'], base['compute_ms']), '.2f')}"
        print(f"| {policy} | {label} | {m['requests']} | {m['completed']} | {fmt(m['p50'], '.0f')} | {fmt(m['p99'], '.0f')} "
              f"| {fmt(m['miss'], '.1f', 100)} | {fmt(m['attempts'], '.2f')} | {fmt(m['compute_ms'], '.2f', 0.001)} "
              f"| {extra} | {fmt(m['cache_hits'], 'd')} |")
    print()
    print("Deadline miss % leaves out the requests failed because the run or their vehicle's trace ended "
          "(reason run-ended / vehicle-left); compute s/req is the compute_ms counters over completed requests.")
    print("Runs:")
    for policy, label, _, _, run in planned:
        m = results[(policy, label)]
        detail = "failed" if m is None else (", ".join(f"{s} {n}" for s, n in m["status"].items())
                                             + f"; {m['excluded']} left out of the deadline miss rate")
        print(f"  {policy}, faults {label}: {run} ({detail})")
    return 0 if all(m is not None for m in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
