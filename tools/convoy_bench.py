"""Shared parts of the Convoy benchmarks that run the bundled Monaco scenario (tools/bench_failover.py,
tools/bench_policies.py): percentile, a random RSU crash schedule, a scenario derived from
maps/default.yaml, and one `convoy launch`.
"""
import os
import random
import re
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def monaco_rsus():
    """The RSU ids of maps/monaco.yaml, sorted."""
    return sorted(set(re.findall(r"id: (rsu-\d+)", open(os.path.join(ROOT, "maps", "monaco.yaml")).read())))


def random_crashes(count, duration, seed, rsus=None):
    """`count` random RSU crashes as sorted (at, rsu, length) tuples: random RSU, start in
    [5, duration - 10] s, 3-8 s each, never two at once on the same RSU (an RSU is back for at
    least 1 s before its next crash). The same arguments give the same schedule."""
    rsus = monaco_rsus() if rsus is None else rsus
    rng = random.Random(seed)
    busy_until = {r: -1.0 for r in rsus}
    if duration <= 15:
        sys.exit(f"random_crashes: --duration must be > 15 s to place crashes in [5, duration - 10] s (got {duration:g})")
    faults = []
    tries = 0
    while len(faults) < count:
        tries += 1
        if tries > 100_000:
            sys.exit(f"random_crashes: cannot fit {count} crashes of 3-8 s on {len(rsus)} RSUs in {duration:g} s")
        at = round(rng.uniform(5, duration - 10), 1)
        rsu = rng.choice(rsus)
        length = round(rng.uniform(3, 8), 1)
        if any(abs(at - f[0]) < 1e-9 and f[1] == rsu for f in faults) or at < busy_until[rsu] + 1:
            continue
        # keep crashes of one RSU apart: the RSU must be back (and beaconing) before its next crash
        if any(f[1] == rsu and not (at >= f[0] + f[2] + 1 or at + length + 1 <= f[0]) for f in faults):
            continue
        faults.append((at, rsu, length))
    faults.sort()
    return faults


def write_scenario(path, duration, faults, seed=None, policy=None, mode="crash", extra=None):
    """Writes a copy of maps/default.yaml to `path` with absolute map and trace paths, the given
    duration, its faults replaced by `faults` ((at, rsu, length) faults of `mode`, with the keys of
    `extra` (e.g. {"loss": 0.3}); may be empty) and, when given, the run seed and a top-level
    `policy:`. Returns `path`."""
    default = open(os.path.join(ROOT, "maps", "default.yaml")).read()
    body = default.split("\nfaults:")[0]
    body = re.sub(r"\nmap: .*", f"\nmap: {os.path.join(ROOT, 'maps', 'monaco.yaml')}", body)
    body = re.sub(r"\ntrace: .*", f"\ntrace: {os.path.join(ROOT, 'traces', 'monaco.fcd.xml')}", body)
    body = re.sub(r"\nduration: .*", f"\nduration: {duration}", body)
    if seed is not None:
        body = re.sub(r"\nseed: .*", f"\nseed: {seed}", body)
    if policy is not None:
        body = re.sub(r"\npolicy: [^\n]*", f"\npolicy: {policy}", body)
    with open(path, "w") as f:
        f.write(body + "\nfaults:\n")
        for at, rsu, length in faults:
            keys = "".join(f", {k}: {v}" for k, v in (extra or {}).items())
            f.write(f"  - {{ at: {at}, node: {rsu}, mode: {mode}, for: {length}{keys} }}\n")
    return path


def launch(convoy, scenario, run, speed, extra=()):
    """Runs `convoy launch scenario --out run --speed speed [extra…]`; returns the path of the
    run's database, or None (with the tail of convoy's output on stderr) if the launch failed."""
    proc = subprocess.run([convoy, "launch", scenario, "--out", run, "--speed", str(speed), *extra],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        print(proc.stdout[-3000:], file=sys.stderr)
        return None
    return os.path.join(run, "run.sqlite")
