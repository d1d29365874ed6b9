"""City-scale benchmark: how large a fleet Convoy emulates on this machine, and how fast.

Cuts the dense city of tools/make-city-scenario down to about N concurrent vehicles (a
deterministic fraction of its vehicle ids), launches it at each speed, samples every process of the
launch from /proc while it runs, and reads the run's database. Per (vehicles, speed) it prints:

- link error |actual - modelled| p50/p99 per link kind (link_samples after the first 5 s);
- requests completed / expired / lost (lost: no terminal state; must be 0);
- CPU per process type (launcher = forwarder + recorder, vehicle, rsu, edge, cloud), in % of one
  core, and per vehicle process; threads and context switches per vehicle process per second;
- memory: PSS of the whole launch and per vehicle process;
- messages offered per emulated second by link kind;
- the machine's load average before and after the run.

and at the end, per fleet size, the fastest speed that held link error p99 <= 1 ms with 0 lost,
and the largest fleet that held it at real time. The compute model's own capacity is visible in the
slowest speed's row: requests that expire there expire because the infrastructure is saturated,
not because the emulator fell behind.

Usage: tools/bench-scale [--vehicles 50 100 200 400 600] [--speed 1 0.5 0.25 0.1] [--duration 20]
                         [--plan N:SPEED,SPEED ...] [--city DIR] [--out DIR] [--convoy PATH] [--json]

--plan gives each fleet size its own speeds (e.g. --plan 50:1,0.5 600:0.25,0.1) instead of every
size at every speed. Results accumulate in OUT/results.json (--out), so a sweep can be run in parts;
--summarise-only prints the table of what is there.
"""
import argparse
import collections
import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from bench_links import percentile  # noqa: E402
from city_scenario import subset, write_scenario  # noqa: E402

HZ = os.sysconf("SC_CLK_TCK")
ROLES = ("launcher", "vehicle", "rsu", "edge", "cloud")


def descendants(root: int) -> list:
    kids = collections.defaultdict(list)
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    s = f.read()
                kids[int(s[s.rindex(")") + 2:].split()[1])].append(int(pid))
            except OSError:
                pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def role_of(pid: int, root: int):
    if pid == root:
        return "launcher"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return None
    return argv[argv.index(b"--role") + 1].decode() if b"--role" in argv else None


def read_proc(pid: int, pss: bool) -> dict:
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    d = {"cpu": (int(fields[11]) + int(fields[12])) / HZ, "threads": int(fields[17]), "switches": 0, "pss_kb": 0}
    for tid in os.listdir(f"/proc/{pid}/task"):  # context switches are counted per thread
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        d["switches"] += int(line.split()[1])
        except OSError:
            pass
    if pss:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        d["pss_kb"] = int(line.split()[1])
        except OSError:
            pass
    return d


class Sampler(threading.Thread):
    """Samples the launch's processes every `every` s; CPU and switches are summed over each
    process's life (a process's last sample stands for its end), memory taken at the run's middle."""

    def __init__(self, root: int, every: float = 2.0):
        super().__init__(daemon=True)
        self.root, self.every = root, every
        self.last = {}      # pid -> (role, first sample, last sample)
        self.memory = None  # role -> (processes, pss kB)
        self.want_memory = threading.Event()
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            pss = self.want_memory.is_set() and self.memory is None
            mem = collections.defaultdict(lambda: [0, 0])
            for pid in descendants(self.root):
                role = self.last[pid][0] if pid in self.last else role_of(pid, self.root)
                if role is None:
                    continue
                try:
                    d = read_proc(pid, pss)
                except OSError:
                    continue
                first = self.last[pid][1] if pid in self.last else d
                self.last[pid] = (role, first, d)
                if pss:
                    mem[role][0] += 1
                    mem[role][1] += d["pss_kb"]
            if pss:
                self.memory = dict(mem)
            self.done.wait(self.every)

    def totals(self, wall: float) -> dict:
        cpu, switches, procs, threads = (collections.Counter() for _ in range(4))
        for role, first, last in self.last.values():
            cpu[role] += last["cpu"] if role != "launcher" else last["cpu"] - first["cpu"]
            switches[role] += last["switches"]
            procs[role] += 1
            threads[role] = max(threads[role], last["threads"])
        return {"cpu_pct": {r: round(100 * cpu[r] / wall, 1) for r in cpu}, "processes": dict(procs),
                "switches_per_s": {r: round(switches[r] / wall / max(1, procs[r]), 1) for r in switches},
                "threads": dict(threads), "memory": self.memory}


def measure(convoy: str, scenario: str, run: str, speed: float, duration: float, extra: list) -> dict:
    shutil.rmtree(run, ignore_errors=True)
    load_before = os.getloadavg()[0]
    started = time.time()
    proc = subprocess.Popen([convoy, "launch", scenario, "--out", run, "--speed", str(speed)] + extra,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = Sampler(proc.pid)
    sampler.start()
    # Memory at the middle of the emulated run (the fleet is at its size by then).
    midway = threading.Timer(duration / speed / 2 + 5, sampler.want_memory.set)
    midway.daemon = True
    midway.start()
    output, _ = proc.communicate()
    midway.cancel()  # a run that ended early must not keep the benchmark waiting for it
    wall = time.time() - started
    sampler.done.set()
    sampler.join()
    if proc.returncode != 0:
        print(output, file=sys.stderr)
        raise SystemExit(f"convoy launch failed ({proc.returncode}): {scenario} at speed {speed}")
    procs = sampler.totals(wall)
    memory = procs.pop("memory") or {}
    return {
        "speed": speed, "wall_s": round(wall, 1), "run": run, "duration": duration,
        "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
        **analyse(run, duration, wall), **procs,
        "memory_mb": round(sum(kb for _, kb in memory.values()) / 1024),
        "vehicle_pss_mb": round(memory["vehicle"][1] / 1024 / max(1, memory["vehicle"][0]), 1) if "vehicle" in memory else None,
    }


def analyse(run: str, duration: float, wall: float) -> dict:
    """What the run's database says. Link errors leave out the first 5 s (start-up: every process
    of the fleet starting at once) and the last second (the drain signal reaching all of them)."""
    db = sqlite3.connect(os.path.join(run, "run.sqlite"))
    by_link = collections.defaultdict(list)
    for link, error in db.execute("SELECT link, ABS(actual_at - modelled_at) * 1000 FROM link_samples WHERE sent_at >= 5 AND sent_at < ?", (duration - 1,)):
        by_link[link].append(error)
    everything = [e for v in by_link.values() for e in v]
    status = dict(db.execute("SELECT status, COUNT(*) FROM requests GROUP BY status").fetchall())
    offered = {link: round(n / duration) for link, n in db.execute("SELECT link, SUM(sent) FROM link_stats GROUP BY link")}
    events = []
    for a, b in db.execute("SELECT started_at, COALESCE(ended_at, 1e9) FROM nodes WHERE role = 'vehicle'"):
        events += [(a, 1), (b, -1)]
    alive = peak = 0
    for _, delta in sorted(events):
        alive += delta
        peak = max(peak, alive)
    timers = dict(db.execute("SELECT name, SUM(value) FROM counters WHERE name IN ('timers_fired', 'timers_late_over_1ms') "
                             "GROUP BY name").fetchall())
    info = dict(db.execute("SELECT key, value FROM run_info").fetchall())
    rows = sum(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
               for t in ("requests", "attempts", "link_samples", "handovers", "detections", "outputs"))
    # Fan-out: receptions per message sent. Vehicles beacon over V2V once a second, RSUs every beacon interval.
    alive_s = dict(db.execute("SELECT role, SUM(MIN(COALESCE(ended_at, ?), ?) - started_at) FROM nodes GROUP BY role",
                              (duration, duration)).fetchall())
    received = dict(db.execute("SELECT kind, SUM(sent) FROM link_stats WHERE link IN ('v2v', 'rsu-beacon') GROUP BY kind").fetchall())
    fanout = {"v2v_beacon": round(received.get("v2v_beacon", 0) / max(1e-9, alive_s.get("vehicle", 0)), 1),
              "rsu_beacon": round(received.get("beacon", 0) / max(1e-9, alive_s.get("rsu", 0) * 10), 1)}
    return {
        "vehicles_peak": peak, "vehicles_total": len(events) // 2,
        "link_p50_ms": percentile(everything, 0.5), "link_p99_ms": percentile(everything, 0.99),
        "links": {k: {"n": len(v), "p50_ms": percentile(v, 0.5), "p99_ms": percentile(v, 0.99)} for k, v in sorted(by_link.items())},
        "requests": sum(status.values()), "completed": status.get("completed", 0), "expired": status.get("expired", 0),
        "failed": status.get("failed", 0), "lost": status.get("open", 0),
        "timers_fired": timers.get("timers_fired", 0), "timers_late_1ms": timers.get("timers_late_over_1ms", 0),
        "offered_per_s": offered, "fanout": fanout, "rows_per_wall_s": round(rows / wall),
        "bus_msgs_per_wall_s": round(int(info.get("bus_forwarded", 0)) / wall),
        "bus_kb_per_wall_s": round(int(info.get("bus_bytes_forwarded", 0)) / wall / 1024),
    }


def parse_plan(item: str, parser) -> tuple:
    """'N:SPEED,SPEED' as (N, [speeds]), or a usage error that names the item."""
    try:
        n, speeds = item.split(":")
        plan = (int(n), [float(v) for v in speeds.split(",")])
    except ValueError:
        parser.error(f"--plan {item!r}: expected VEHICLES:SPEED[,SPEED...], e.g. 600:0.25,0.1")
    if plan[0] <= 0 or not all(0 < v <= 100 for v in plan[1]):
        parser.error(f"--plan {item!r}: expected a positive number of vehicles and speeds in (0, 100]")
    return plan


def fmt(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vehicles", type=int, nargs="+", default=[50, 100, 200, 400, 600])
    p.add_argument("--speed", type=float, nargs="+", default=[1.0, 0.5, 0.25, 0.1])
    p.add_argument("--duration", type=float, default=20, help="emulated seconds per run")
    p.add_argument("--plan", nargs="+", default=None, help="N:SPEED,SPEED,... per fleet size")
    p.add_argument("--summarise-only", action="store_true")
    p.add_argument("--city", default=os.path.join(here, "..", ".build-city"))
    p.add_argument("--out", default=None, help="keep the runs here (default: a temporary directory, removed)")
    p.add_argument("--convoy", default=os.path.join(here, "..", ".build", "release", "convoy"))
    p.add_argument("--label", default="current", help="names the binary's rows (e.g. before/after a change)")
    p.add_argument("--launch-args", default="", help="more arguments for `convoy launch` (e.g. '--no-curve')")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if not os.path.exists(os.path.join(a.city, "city.json")):
        p.error(f"{a.city}/city.json: no city there (make it with tools/make-city-scenario)")
    with open(os.path.join(a.city, "city.json")) as f:
        city = json.load(f)
    out = a.out or os.path.join("/tmp", f"convoy-bench-scale-{os.getpid()}")
    os.makedirs(out, exist_ok=True)
    shutil.copy(os.path.join(a.city, "map.yaml"), os.path.join(out, "map.yaml"))
    stored = os.path.join(out, "results.json")
    results = []
    if os.path.exists(stored):
        with open(stored) as f:
            results = json.load(f)
    plan = [parse_plan(item, p) for item in a.plan] if a.plan else [(n, a.speed) for n in a.vehicles]
    if a.summarise_only:
        plan = []
        for r in results:  # re-read the runs still there (the analysis may have changed since)
            if os.path.exists(os.path.join(r.get("run", ""), "run.sqlite")):
                r.update(analyse(r["run"], r["duration"], r["wall_s"]))
    print(f"city: {city['peak_concurrent']} vehicles at once at its peak, {city['area_m'][0]} x {city['area_m'][1]} m; "
          f"{os.cpu_count()} cores; {a.duration:g} emulated s per run", flush=True)
    for n, speeds in plan:
        fraction = min(1.0, n / city["peak_concurrent"])
        trace = os.path.join(out, f"city-{n}.csv")
        subset(os.path.join(a.city, "city.csv"), trace, fraction)
        scenario = os.path.join(out, f"city-{n}.yaml")
        write_scenario(scenario, f"city-{n}", os.path.basename(trace), a.duration)
        for speed in speeds:
            r = measure(a.convoy, scenario, os.path.join(out, f"run-{a.label}-{n}-{speed:g}"), speed, a.duration,
                        shlex.split(a.launch_args))
            r["vehicles"], r["label"] = n, a.label
            results = [x for x in results if (x["vehicles"], x["speed"], x["label"]) != (n, speed, a.label)] + [r]
            with open(stored, "w") as f:
                json.dump(results, f, indent=1)
            if not a.json:
                print(f"  {n} vehicles (peak {r['vehicles_peak']}) at speed {speed:g}: link p99 {fmt(r['link_p99_ms'], '.2f')} ms, "
                      f"{r['completed']}/{r['requests']} completed, {r['expired']} expired, {r['lost']} lost, "
                      f"vehicles {r['cpu_pct'].get('vehicle', 0)} % CPU, {r['wall_s']} s wall, load {r['load_before']} -> {r['load_after']}",
                      flush=True)
    if a.json:
        print(json.dumps(results, indent=1))
        return 0 if all(r["lost"] == 0 for r in results) else 1
    results.sort(key=lambda r: (r["label"] != a.label, r["label"], r["vehicles"], -r["speed"]))
    print()
    print("| binary | vehicles (peak) | speed | link p50 / p99 ms | v2v p99 | cellular p99 | backhaul p99 | completed / expired / lost "
          "| CPU % of a core: launcher / vehicles / servers | load before → after |")
    print("|" + "---|" * 10)
    for r in results:
        c, links = r["cpu_pct"], r["links"]
        cell = lambda k: fmt(max((v["p99_ms"] for name, v in links.items() if name.startswith(k) and v["p99_ms"] is not None), default=None), ".2f")
        servers = round(sum(c.get(role, 0) for role in ("rsu", "edge", "cloud")), 1)
        print(f"| {r['label']} | {r['vehicles']} ({r['vehicles_peak']}) | {r['speed']:g} | {fmt(r['link_p50_ms'], '.2f')} / {fmt(r['link_p99_ms'], '.2f')} "
              f"| {cell('v2v')} | {cell('cellular')} | {cell('backhaul')} | {r['completed']} / {r['expired']} / {r['lost']} "
              f"| {c.get('launcher', 0)} / {c.get('vehicle', 0)} / {servers} | {r['load_before']} → {r['load_after']} |")
    print()
    print("Profile (per wall second unless said): CPU and context switches per vehicle process, its threads, memory (PSS), "
          "receptions per emulated second and fan-out (receivers per message) of V2V and RSU beacons, messages and kB through "
          "the bus forwarder, rows written to SQLite.")
    print()
    print("| binary | vehicles | speed | CPU ms/s per vehicle | switches/s per vehicle | threads | memory MB (per vehicle) "
          "| V2V beacons received/s (fan-out) | RSU beacons received/s (fan-out) | bus msgs/s | bus kB/s | rows/s |")
    print("|" + "---|" * 12)
    for r in results:
        received, fan = r["offered_per_s"], r.get("fanout", {})
        print(f"| {r['label']} | {r['vehicles']} | {r['speed']:g} | {10 * r['cpu_pct'].get('vehicle', 0) / max(1, r['processes'].get('vehicle', 1)):.2f} "
              f"| {r['switches_per_s'].get('vehicle', '-')} | {r['threads'].get('vehicle', '-')} | {r['memory_mb']} ({fmt(r['vehicle_pss_mb'])}) "
              f"| {received.get('v2v', 0)} ({fan.get('v2v_beacon', '-')}) | {received.get('rsu-beacon', 0)} ({fan.get('rsu_beacon', '-')}) "
              f"| {r.get('bus_msgs_per_wall_s', '-')} | {r.get('bus_kb_per_wall_s', '-')} | {r.get('rows_per_wall_s', '-')} |")
    print()
    best = {}
    for r in results:
        if r["label"] == a.label and r["link_p99_ms"] is not None and r["link_p99_ms"] <= 1.0 and r["lost"] == 0:
            best[r["vehicles"]] = max(best.get(r["vehicles"], 0), r["speed"])
    for n in sorted({r["vehicles"] for r in results if r["label"] == a.label}):
        print(f"{a.label}: {n} vehicles: fastest speed with link p99 <= 1 ms and 0 lost: {best.get(n, 'none of those tried')}")
    realtime = [n for n in best if best[n] == 1.0]
    print(f"{a.label}: largest fleet at real time with p99 <= 1 ms: {max(realtime) if realtime else 'none of those tried'}")
    if not a.out:
        shutil.rmtree(out, ignore_errors=True)
    return 0 if all(r["lost"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
