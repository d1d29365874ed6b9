"""Failover benchmark: many random RSU crashes in one run of the bundled Monaco scenario.

Writes a copy of maps/default.yaml whose faults are N random RSU crashes (random RSU, random
start, 3-8 s each, never two at once on the same RSU), runs `convoy launch` on it, and reports
from the run's database:
- requests by status, and how many of the requests that had an attempt to a crashed RSU still
  completed ("lost" = affected requests that did not complete);
- failure detection time: each observer's first `dead` of the crashed RSU minus the crash, p50/p99;
- failover gap: for affected vehicles, crash start to their next completed request, p50/p99.

Usage: tools/bench-failover [--crashes 100] [--duration 170] [--speed 1] [--seed 7] [--no-curve]
"""
import argparse
import os
import sqlite3
import sys
import tempfile

from convoy_bench import launch, percentile, random_crashes, write_scenario


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crashes", type=int, default=100)
    parser.add_argument("--duration", type=float, default=170)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-curve", action="store_true", help="run without CurveZMQ (to measure its cost)")
    parser.add_argument("--convoy", default=os.path.join(os.path.dirname(__file__), "..", ".build", "release", "convoy"))
    args = parser.parse_args()

    faults = random_crashes(args.crashes, args.duration, args.seed)
    directory = tempfile.mkdtemp(prefix="convoy-failover-")
    scenario = write_scenario(os.path.join(directory, "scenario.yaml"), args.duration, faults)
    run = os.path.join(directory, "run")
    database = launch(args.convoy, scenario, run, args.speed, ["--no-curve"] if args.no_curve else [])
    if database is None:
        return 1
    db = sqlite3.connect(database)
    status = dict(db.execute("SELECT status, COUNT(*) FROM requests GROUP BY status").fetchall())
    crashes = db.execute("SELECT node_id, started_at, ended_at FROM faults WHERE mode = 'crash'").fetchall()
    detections, gaps = [], []
    affected_requests = set()
    for node, start, end in crashes:
        end = end if end is not None else 1e9
        for (first,) in db.execute(
                "SELECT MIN(at) FROM detections WHERE peer = ? AND state = 'dead' AND at >= ? AND at <= ? GROUP BY observer",
                (node, start, end)):
            detections.append((first - start) * 1000)
        hit = db.execute(
            "SELECT DISTINCT a.request_id, r.vehicle_id FROM attempts a JOIN requests r USING (request_id) "
            "WHERE a.target = ? AND a.outcome IN ('target-dead', 'timeout', 'out-of-range') AND a.ended_at >= ? AND a.ended_at <= ?",
            (node, start, end + 1)).fetchall()
        for request_id, vehicle in hit:
            affected_requests.add(request_id)
        for vehicle in {v for _, v in hit}:
            row = db.execute("SELECT MIN(finished_at) FROM requests WHERE vehicle_id = ? AND status = 'completed' AND finished_at > ?",
                             (vehicle, start)).fetchone()
            if row[0] is not None:
                gaps.append((row[0] - start) * 1000)
    lost = [r for (r,) in db.execute("SELECT request_id FROM requests WHERE status != 'completed'") if r in affected_requests]
    print(f"{len(crashes)} RSU crashes over {args.duration:g} s (speed {args.speed:g}, "
          f"{'no CurveZMQ' if args.no_curve else 'CurveZMQ'}), run {run}")
    print(f"  requests: {status}; {len(affected_requests)} had an attempt cut by a crash, {len(lost)} of them did not complete")
    print(f"  detection: p50 {percentile(detections, 0.5):.0f} ms, p99 {percentile(detections, 0.99):.0f} ms, "
          f"max {max(detections) if detections else float('nan'):.0f} ms over {len(detections)} observations")
    print(f"  failover gap: p50 {percentile(gaps, 0.5):.0f} ms, p99 {percentile(gaps, 0.99):.0f} ms over {len(gaps)} affected vehicles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
