"""Emulation accuracy benchmark: |actual - modelled| delivery time per link, with N vehicle processes.

Generates a synthetic city (3 km x 3 km, RSUs every 500 m, 3 edge servers, a cloud, a macro cell;
N vehicles driving straight lines at 8-15 m/s, entering during the first 10 s), runs
`convoy launch` on it, and reads the link_samples table: for every delivered request, reply and
(a sample of) V2V beacons, the emulated instant the link model scheduled it for and the instant the
receiving actor actually handled it. Samples from the first 15 s (start-up) are left out.

Usage: tools/bench-links [--vehicles 50 200 600] [--speed 1.0] [--duration 40] [--convoy PATH]
"""
import argparse
import json
import math
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time


def write_world(directory: str, vehicles: int, duration: float, seed: int, lifetime: float = 0) -> str:
    rng = random.Random(seed)
    size = 3000.0
    rsus, edges = [], {f"edge-{i}": [] for i in range(1, 4)}
    n = 0
    for gx in range(6):
        for gy in range(6):
            n += 1
            rid = f"rsu-{n}"
            rsus.append((rid, 250 + gx * 500, 250 + gy * 500))
            edges[f"edge-{1 + (gx // 2)}"].append(rid)
    with open(os.path.join(directory, "map.yaml"), "w") as f:
        f.write("name: bench-grid\n")
        f.write("cloud: { id: cloud, compute: { device: a100-80gb, slots: 64, queue: 256 } }\n")
        f.write(f"macro: {{ id: macro, x: {size/2}, y: {size/2}, radius: 3000 }}\n")
        f.write("edges:\n")
        for i, (eid, members) in enumerate(edges.items()):
            f.write(f"  - {{ id: {eid}, x: {500 + i * 1000}, y: 1500, rsus: [{', '.join(members)}], "
                    "compute: { device: rtx-4090, slots: 32, queue: 128 } }\n")
        f.write("rsus:\n")
        for rid, x, y in rsus:
            f.write(f"  - {{ id: {rid}, x: {x}, y: {y}, radius: 400 }}\n")
        f.write("links:\n  macro: { bandwidth_mhz: 10, noise_dbm: -99 }\n")
    with open(os.path.join(directory, "trace.csv"), "w") as f:
        f.write("time,id,x,y,speed,angle\n")
        for v in range(vehicles):
            if lifetime > 0:  # turnover: vehicles enter throughout the run and each stays `lifetime` s
                enter = round((duration - lifetime) * v / max(1, vehicles), 1)
            else:
                enter = round(10.0 * v / max(1, vehicles), 1)
            leave = enter + lifetime if lifetime > 0 else duration + 2
            x, y = rng.uniform(100, size - 100), rng.uniform(100, size - 100)
            heading = rng.uniform(0, 2 * math.pi)
            speed = rng.uniform(8, 15)
            t = enter
            while t <= leave:
                f.write(f"{t:.1f},veh{v},{x:.2f},{y:.2f},{speed:.2f},{math.degrees(heading):.1f}\n")
                x += speed * math.cos(heading)
                y += speed * math.sin(heading)
                if not (50 < x < size - 50 and 50 < y < size - 50):  # bounce off the edge of the city
                    heading += math.pi
                    x = min(max(x, 60), size - 60)
                    y = min(max(y, 60), size - 60)
                t += 1.0
    with open(os.path.join(directory, "scenario.yaml"), "w") as f:
        f.write(f"""name: bench-{vehicles}
map: map.yaml
trace: trace.csv
duration: {duration}
seed: {seed}
workload: {{ arrival: poisson, mean_interval: 5.0, model: llama-3-8b, input_tokens: 128, output_tokens: 16, deadline: 5 }}
liveness: {{ beacon_interval: 0.1, suspect_after: 2, dead_after: 3 }}
faults: []
""")
    return os.path.join(directory, "scenario.yaml")


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def measure(convoy: str, vehicles: int, speed: float, duration: float, lifetime: float = 0) -> dict:
    directory = tempfile.mkdtemp(prefix=f"convoy-bench-{vehicles}-")
    scenario = write_world(directory, vehicles, duration, seed=1, lifetime=lifetime)
    run = os.path.join(directory, "run")
    started = time.time()
    proc = subprocess.run([convoy, "launch", scenario, "--out", run, "--speed", str(speed)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.time() - started
    if proc.returncode != 0:
        print(proc.stdout, file=sys.stderr)
        raise SystemExit(f"convoy launch failed ({proc.returncode}) with {vehicles} vehicles")
    db = sqlite3.connect(os.path.join(run, "run.sqlite"))
    rows = db.execute("SELECT link, kind, actual_at - modelled_at FROM link_samples WHERE sent_at >= 15").fetchall()
    by_link = {}
    for link, kind, error in rows:
        by_link.setdefault(f"{link}/{kind}", []).append(abs(error) * 1000)
    everything = [abs(e) * 1000 for _, _, e in rows]
    status = dict(db.execute("SELECT status, COUNT(*) FROM requests GROUP BY status").fetchall())
    spawned = db.execute("SELECT COUNT(*) FROM nodes WHERE role = 'vehicle'").fetchone()[0]
    # Peak number of vehicle processes alive at once, from their start and end times.
    events = []
    for started, ended in db.execute("SELECT started_at, COALESCE(ended_at, 1e9) FROM nodes WHERE role = 'vehicle'"):
        events += [(started, 1), (ended, -1)]
    alive = peak = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):
        alive += delta
        peak = max(peak, alive)
    return {
        "vehicles": vehicles, "speed": speed, "wall_s": round(wall, 1), "samples": len(everything),
        "p50_ms": percentile(everything, 0.5), "p99_ms": percentile(everything, 0.99),
        "links": {k: {"n": len(v), "p50_ms": percentile(v, 0.5), "p99_ms": percentile(v, 0.99)} for k, v in sorted(by_link.items())},
        "requests": status, "run": run, "vehicle_processes": spawned, "peak_alive": peak,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, nargs="+", default=[50, 200, 600])
    parser.add_argument("--speed", type=float, nargs="+", default=[1.0])
    parser.add_argument("--duration", type=float, default=40)
    parser.add_argument("--lifetime", type=float, default=0,
                        help="seconds each vehicle stays (0: all stay the whole run); with it, vehicles enter throughout")
    parser.add_argument("--convoy", default=os.path.join(os.path.dirname(__file__), "..", ".build", "release", "convoy"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    for vehicles in args.vehicles:
        for speed in args.speed:
            result = measure(args.convoy, vehicles, speed, args.duration, args.lifetime)
            results.append(result)
            if args.json:
                continue
            print(f"{vehicles:4d} vehicles, speed {speed:g}: |actual - modelled| p50 {result['p50_ms']:.3f} ms, "
                  f"p99 {result['p99_ms']:.3f} ms over {result['samples']} deliveries "
                  f"(wall {result['wall_s']} s; {result['vehicle_processes']} vehicle processes, peak {result['peak_alive']} at once; "
                  f"requests {result['requests']})", flush=True)
            for link, figures in result["links"].items():
                print(f"      {link:<22} n={figures['n']:<6} p50 {figures['p50_ms']:.3f} ms  p99 {figures['p99_ms']:.3f} ms")
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
