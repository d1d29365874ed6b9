#!/usr/bin/env python3
"""Reasoning schemes benchmark: the paper's collaborative-reasoning schemes on the same Monaco trace, seed and faults.

Every scheme answers the same task (Llama-3-8B, 256 prompt tokens, 32 generated, 5 s deadline,
20 kB of input, one request per vehicle every 2 s on average) in a copy of maps/default.yaml:
- multi-access: today's offloading over the best path (best-rate policy, with failover);
- split-k8: vertical split inference, the first 8 of 32 layers on board, the rest on a server;
- split-auto: the split point chosen per request (LatencyMinimisingSplit);
- experts: the task decomposed into two experts' subtasks (vision: Llama-3-8B-q4, traffic:
  SmolLM2-135M), each held by half the fleet, sent to holders over V2V;
- pipeline: Llama-3-8B split across two neighbouring vehicles (16 layers each) over V2V.
Each scheme runs twice: without faults, and with N random RSU crashes (the same schedule for
every scheme, from --fault-seed). The multi-access runs also answer a federated analytics query
(vehicles and mean speed per 200 m road cell over the run), reported against the trace's truth:
exactly in the run without faults, with Laplace noise (ε = 1) in the run with crashes.

For each run: requests, completed, lost (no terminal state: must be 0), latency p50/p99 of the
completed, deadline-miss rate (leaving out requests closed because the run or their vehicle's trace
ended), and megabytes of request traffic (requests, replies, cancels) offered to each link type.

Usage: tools/bench-schemes [--schemes multi-access,split-k8,split-auto,experts,pipeline] [--duration 60]
                           [--speed 1] [--seed 1] [--crashes 8] [--fault-seed 7] [--out DIR] [--report-only]
"""
import argparse
import os
import re
import sqlite3
import sys
import tempfile

from convoy_bench import launch, percentile, random_crashes, write_scenario

TASK = ("{ name: scene, model: llama-3-8b, input_tokens: 256, output_tokens: 32, deadline: 5.0, "
        "payload_bytes: 20000, result_bytes: 2000%s }")
EXPERTS = """experts:
  - { name: vision, model: llama-3-8b-q4, share: 0.5 }
  - { name: traffic, model: smollm2-135m, share: 0.5 }
"""
ANALYTICS = "analytics: { aggregator: cloud, cell_size: 200%s }\n"
# The runs with crashes answer the analytics query with Laplace noise of this ε (the runs without, exactly).
EPSILON = 1.0
SCHEMES = {
    "multi-access": ("", ANALYTICS),
    "split-k8": (", split: 8", ""),
    "split-auto": (", split: auto", ""),
    "experts": (", subtasks: [vision, traffic]", EXPERTS),
    "pipeline": (", pipeline: 2", ""),
}
LINKS = [("cellular-up", "cell up"), ("cellular-down", "cell down"), ("backhaul", "backhaul"), ("wan", "WAN"),
         ("macro-up", "macro up"), ("v2v", "V2V")]


def scheme_scenario(path, scheme, duration, faults, seed):
    """maps/default.yaml with `scheme`'s task as the only one (and its extra sections)."""
    write_scenario(path, duration, faults, seed=seed)
    text = open(path).read()
    task_field, extra = SCHEMES[scheme]
    if extra == ANALYTICS:
        extra = ANALYTICS % (f", epsilon: {EPSILON}" if faults else "")
    text = re.sub(r"  tasks:\n(    - .*\n)+", "  tasks:\n    - " + TASK % task_field + "\n", text)
    with open(path, "w") as f:
        f.write(text.replace("\nfaults:", "\n" + extra + "faults:", 1))
    return path


def ended(status, reason):
    return status == "failed" and reason is not None and (reason in ("vehicle-left", "run-ended") or reason.startswith("run-ended "))


def measure(database):
    db = sqlite3.connect(database)
    m = {"status": dict(db.execute("SELECT COALESCE(status, 'open'), COUNT(*) FROM requests GROUP BY 1"))}
    m["requests"] = sum(m["status"].values())
    m["completed"] = m["status"].get("completed", 0)
    m["lost"] = m["status"].get("open", 0)
    latencies = [v for (v,) in db.execute("SELECT latency_ms FROM requests WHERE status = 'completed' AND latency_ms IS NOT NULL")]
    m["p50"], m["p99"] = percentile(latencies, 0.5), percentile(latencies, 0.99)
    rows = db.execute("SELECT status, reason, deadline_met FROM requests").fetchall()
    considered = [(s, met) for s, r, met in rows if not ended(s, r)]
    m["miss"] = sum(1 for s, met in considered if not (s == "completed" and met == 1)) / len(considered) if considered else None
    m["bytes"] = dict(db.execute("SELECT link, SUM(bytes) FROM link_stats WHERE kind IN ('request', 'reply', 'cancel') GROUP BY link"))
    m["paths"] = db.execute("SELECT COALESCE(path, '-'), COUNT(*) FROM requests WHERE status = 'completed' GROUP BY 1 "
                            "ORDER BY 2 DESC LIMIT 3").fetchall()
    m["analytics"] = analytics(db)
    db.close()
    return m


def analytics(db):
    """The analytics estimate against the truth: (answers, vehicles, count error, speed error, bytes), or None."""
    if not db.execute("SELECT name FROM sqlite_master WHERE name = 'analytics_cells'").fetchone():
        return None
    cells = {}
    for source, x, y, n, speed, contributors in db.execute(
            "SELECT source, cell_x, cell_y, vehicles, mean_speed, contributors FROM analytics_cells"):
        cells.setdefault(source, {})[(x, y)] = (n, speed, contributors)
    truth, estimate = cells.get("truth"), cells.get("estimate", {})
    if not truth:
        return None
    count_error = sum(abs(estimate.get(c, (0, None, 0))[0] - t[0]) for c, t in truth.items()) / len(truth)
    speeds = [abs(estimate[c][1] - t[1]) for c, t in truth.items() if c in estimate and t[1] is not None and estimate[c][1] is not None]
    answered = next(iter(estimate.values()))[2] if estimate else 0
    vehicles = next(iter(truth.values()))[2]
    sent = db.execute("SELECT COALESCE(SUM(value), 0) FROM counters WHERE name = 'analytics_up_bytes_from_vehicles'").fetchone()[0]
    return answered, vehicles, count_error, (sum(speeds) / len(speeds) if speeds else None), sent


def fmt(value, spec):
    return "n/a" if value is None or value != value else format(value, spec)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemes", default=",".join(SCHEMES))
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--crashes", type=int, default=8, help="random RSU crashes in the runs with faults")
    parser.add_argument("--fault-seed", type=int, default=7)
    parser.add_argument("--convoy", default=os.path.join(os.path.dirname(__file__), "..", ".build", "release", "convoy"))
    parser.add_argument("--out", help="directory for the runs (default: a new temporary directory)")
    parser.add_argument("--report-only", action="store_true", help="launch nothing: report on the runs in --out")
    args = parser.parse_args()
    schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
    unknown = [s for s in schemes if s not in SCHEMES]
    if unknown:
        parser.error(f"unknown schemes {', '.join(unknown)} (known: {', '.join(SCHEMES)})")
    if args.report_only and not args.out:
        parser.error("--report-only needs --out")
    directory = os.path.abspath(args.out) if args.out else tempfile.mkdtemp(prefix="convoy-schemes-")
    os.makedirs(directory, exist_ok=True)
    crashes = random_crashes(args.crashes, args.duration, args.fault_seed)
    settings = [("none", "no-faults", []), (f"{len(crashes)} crashes", "crashes", crashes)]
    planned = [(s, label, os.path.join(directory, f"{s}-{tag}"), faults) for s in schemes for label, tag, faults in settings]
    results = {}
    for i, (scheme, label, run, faults) in enumerate(planned, 1):
        database = os.path.join(run, "run.sqlite")
        if not args.report_only:
            if os.path.exists(database):
                print(f"error: {run} already holds a run; pass another --out", file=sys.stderr)
                return 1
            print(f"[{i}/{len(planned)}] {scheme}, faults: {label} -> {run}", file=sys.stderr, flush=True)
            database = launch(args.convoy, scheme_scenario(run + ".yaml", scheme, args.duration, faults, args.seed), run, args.speed)
        results[(scheme, label)] = measure(database) if database and os.path.exists(database) else None

    print(f"Monaco, {args.duration:g} s at speed {args.speed:g}, run seed {args.seed}; faults: none, or {len(crashes)} "
          f"crashes of random RSUs, 3-8 s each (fault seed {args.fault_seed}); one task: Llama-3-8B, 256 → 32 tokens, 5 s deadline")
    print()
    print("| scheme | faults | requests | completed | lost | p50 ms | p99 ms | deadline miss % | "
          + " | ".join(f"MB {name}" for _, name in LINKS) + " | top paths |")
    print("|---|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(LINKS) + "---|")
    for scheme, label, run, _ in planned:
        m = results[(scheme, label)]
        if m is None:
            print(f"| {scheme} | {label} | run failed |" + " |" * (6 + len(LINKS)))
            continue
        mb = " | ".join(fmt(m["bytes"].get(link, 0) / 1e6, ".1f") for link, _ in LINKS)
        paths = ", ".join(f"{p} {n}" for p, n in m["paths"])
        print(f"| {scheme} | {label} | {m['requests']} | {m['completed']} | {m['lost']} | {fmt(m['p50'], '.0f')} "
              f"| {fmt(m['p99'], '.0f')} | {fmt(m['miss'] * 100 if m['miss'] is not None else None, '.1f')} | {mb} | {paths} |")
    print()
    for scheme, label, run, _ in planned:
        m = results[(scheme, label)]
        if m and m["analytics"]:
            answered, vehicles, count_error, speed_error, sent = m["analytics"]
            noise = f"ε = {EPSILON:g}" if label != "none" else "no noise"
            print(f"Federated analytics ({scheme}, faults {label}, {noise}): {answered} of {vehicles} vehicles answered; "
                  f"error per true road cell: {count_error:.3f} vehicles, {fmt(speed_error, '.3f')} m/s; {sent} bytes of answers uplinked")
    print()
    print("MB: request, reply and cancel bytes offered to each link type (V2V: counted at each receiver). "
          "Deadline miss % leaves out requests closed because the run or their vehicle's trace ended.")
    print("Runs: " + ", ".join(run for _, _, run, _ in planned))
    return 0 if all(results.values()) and all(m["lost"] == 0 for m in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
