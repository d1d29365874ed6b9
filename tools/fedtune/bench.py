"""tools/bench-fedtune: runs the federated fine-tuning schemes on one network and compares them.

Every run uses maps/fedtune-map.yaml (one 100 m cell, the paper's radio numbers, a standby RSU)
— hierarchical and its FedAvg baseline maps/fedtune-2rsu-map.yaml (the cell split between two RSUs) —
traces/fedtune-cell-8.csv from trace time 50 s (veh-6 drives out of the cell 10 s into the run:
a straggler; the others stay), the same seed, data split (8 clients, 4 domains, 80 % dominant),
local training (1 step of batch 2 × 64 tokens per round, emulated on the epyc-2vcpu profile),
and an rsu-1 crash at t = 20 s for 5 s. The synchronous schemes wait for a straggler until the
round deadline; the asynchronous ones do not.
"""
import argparse
import math
import os
import sqlite3
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIENTS = [f"veh-{i}" for i in range(8)]

ONE_CELL, TWO_RSUS = "fedtune-map.yaml", "fedtune-2rsu-map.yaml"
SCHEMES = {
    # name: (scheme, adapter, extra fedtune lines, versions per round of 8 client updates, map)
    "fl-lora": ("fedavg", "lora", [], 1, ONE_CELL),
    "fl-prefix": ("fedavg", "prefix", [], 1, ONE_CELL),
    "fl-prompt": ("fedavg", "prompt", [], 1, ONE_CELL),
    "cfl-lora": ("clustered", "lora", ["clusters: 4", "cluster_by: labels"], 1, ONE_CELL),
    "fedasync-lora": ("fedasync", "lora", ["staleness: { alpha: 0.6, exponent: 0.5, max: 16 }"], 8, ONE_CELL),
    "fedbuff-lora": ("fedbuff", "lora", ["buffer: { size: 4, server_rate: 1 }", "staleness: { alpha: 0.6, exponent: 0.5, max: 16 }"], 2, ONE_CELL),
    # Hierarchical needs more than one RSU: it and its FedAvg baseline run with the cell split in two.
    "fl-lora-2rsu": ("fedavg", "lora", [], 1, TWO_RSUS),
    "hier-lora": ("hierarchical", "lora", ["kappa1: 1", "kappa2: 2"], 1, TWO_RSUS),
}


def scenario(name, rounds, model, duration):
    scheme, adapter, extra, per_round, network = SCHEMES[name]
    versions = rounds * per_round
    lines = [
        f"name: bench-{name}",
        f"map: {ROOT}/maps/{network}",
        f"trace: {ROOT}/traces/fedtune-cell-8.csv",
        "start: 50",
        f"duration: {duration}",
        "seed: 1",
        "workload: { arrival: poisson, mean_interval: 60, model: llama-3-8b, input_tokens: 64, output_tokens: 8, deadline: 5 }",
        "liveness: { beacon_interval: 0.1, suspect_after: 2, dead_after: 3 }",
        "faults:",
        "  - { at: 20, node: rsu-1, mode: crash, for: 5 }",
        "fedtune:",
        f"  scheme: {scheme}",
        f"  adapter: {{ kind: {adapter}, rank: 8, alpha: 16, targets: [q_proj, v_proj], virtual_tokens: 16 }}",
        f"  model: {model}",
        "  timing: { model: smollm2-135m, device: epyc-2vcpu }",
        f"  rounds: {versions}",
        "  local_steps: 1",
        "  batch: 2",
        f"  learning_rate: {3e-2 if adapter == 'prompt' else 1e-3}",
        "  sequence_length: 64",
        "  domains: [python, c-headers, licenses, perl]",
        f"  clients: [{', '.join(CLIENTS)}]",
        "  split: { dominant: 0.8 }",
        "  samples_per_client: 64",
        "  test_samples_per_domain: 4",
        "  aggregator: edge-1",
        "  start_at: 1",
        "  round_deadline: 8",
        f"  evaluate_every: {per_round}",
    ] + ["  " + e for e in extra]
    return "\n".join(lines) + "\n"


def summarise(run):
    db = sqlite3.connect(os.path.join(run, "run.sqlite"))
    evals = db.execute("SELECT round, loss, perplexity, at FROM fed_evals WHERE domain = '*' ORDER BY round").fetchall()
    # Hierarchical: the RSU groups' uploads to edge-1 are counted apart from the vehicles' updates.
    groups = "vehicle_id IN (SELECT aggregated_at FROM fed_rounds WHERE level = 'group')"
    up = db.execute(f"SELECT COALESCE(SUM(bytes), 0) FROM fed_updates WHERE upload_ended_at IS NOT NULL AND NOT {groups}").fetchone()[0]
    group_up = db.execute(f"SELECT COALESCE(SUM(bytes), 0) FROM fed_updates WHERE upload_ended_at IS NOT NULL AND {groups}").fetchone()[0]
    backhaul = db.execute("SELECT COALESCE(SUM(bytes), 0) FROM link_stats WHERE link = 'backhaul' AND kind = 'fed_up'").fetchone()[0]
    outcomes = dict(db.execute(f"SELECT outcome, COUNT(*) FROM fed_updates WHERE NOT {groups} GROUP BY outcome").fetchall())
    misses = db.execute("SELECT COALESCE(SUM(value), 0) FROM counters WHERE name = 'fed_training_late'").fetchone()[0]
    late_ms = db.execute("SELECT COALESCE(SUM(value), 0) FROM counters WHERE name = 'fed_training_late_ms'").fetchone()[0]
    uploads = [r[0] for r in db.execute(
        f"SELECT upload_ended_at - upload_started_at FROM fed_updates WHERE upload_ended_at IS NOT NULL AND bytes > 0 AND NOT {groups} ORDER BY 1")]
    # How closely the chunks' delivery over the cell followed the link model (|actual − modelled|, one chunk in 20).
    chunk_errors = [r[0] * 1000 for r in db.execute(
        "SELECT ABS(actual_at - modelled_at) FROM link_samples WHERE link = 'cellular-up' AND kind = 'fed_up' ORDER BY 1")]
    return {"evals": evals, "bytes": up, "group_bytes": group_up, "backhaul": backhaul, "outcomes": outcomes, "misses": misses,
            "late_ms": late_ms, "uploads": uploads, "chunk_errors": chunk_errors}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=os.path.join(ROOT, "runs", "bench-fedtune"))
    p.add_argument("--speed", type=float, default=0.1)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--duration", type=int, default=None,
                   help="emulated seconds per run (default 30; 45 on the two-RSU map, where hierarchical needs the time "
                        "to get over rsu-1's crash: the RSU's group round is lost with it)")
    p.add_argument("--model", default="smollm2")
    p.add_argument("--schemes", default=",".join(SCHEMES))
    p.add_argument("--summarise-only", action="store_true", help="re-read the runs already in --out; launch nothing")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    load = open("/proc/loadavg").read().split()[:3]
    results = {}
    for name in args.schemes.split(","):
        path = os.path.join(args.out, f"{name}.yaml")
        if not args.summarise_only:
            with open(path, "w") as f:
                duration = args.duration or (45 if SCHEMES[name][4] == TWO_RSUS else 30)
                f.write(scenario(name, args.rounds, args.model, duration))
        run = os.path.join(args.out, name)
        started = time.time()
        status = 0
        if not args.summarise_only:
            subprocess.run(["rm", "-rf", run], check=True)
            print(f"bench-fedtune: {name} (speed {args.speed})…", file=sys.stderr, flush=True)
            status = subprocess.run([os.path.join(ROOT, ".build/release/convoy"), "launch", path, "--out", run, "--speed", str(args.speed)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT).returncode
        results[name] = summarise(run)
        results[name]["status"] = status
        results[name]["wall"] = time.time() - started
    # Each run is compared with FL-LoRA on its own network.
    targets = {}
    for name, r in results.items():
        scheme, adapter, _, _, network = SCHEMES[name]
        if scheme == "fedavg" and adapter == "lora" and r["evals"]:
            targets[network] = r["evals"][-1][1]
    print(f"\nFederated fine-tuning, {len(CLIENTS)} clients, 4 domains, {args.model}, speed {args.speed}; "
          f"load before: {' '.join(load)}, after: {' '.join(open('/proc/loadavg').read().split()[:3])}")
    header = ["scheme", "evals", "first loss", "final loss", "final ppl", "emulated s to FL-LoRA final", "MB up",
              "backhaul MB up (RSU groups' share)", "updates aggregated/late/stale/lost/unapplied", "upload p50 s",
              "chunk link error p99 ms (samples)", "training misses", "exit", "wall s"]
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for name, r in results.items():
        e = r["evals"]
        target = targets.get(SCHEMES[name][4])
        reach = next((at for _, loss, _, at in e if target is not None and loss <= target + 1e-9), None)
        o = r["outcomes"]
        ups = r["uploads"]
        errs = r["chunk_errors"]
        print(" | ".join([name, str(len(e)), f"{e[0][1]:.3f}" if e else "-", f"{e[-1][1]:.3f}" if e else "-",
                          f"{e[-1][2]:.2f}" if e else "-", f"{reach:.1f}" if reach is not None else "not reached",
                          f"{r['bytes'] / 1e6:.1f}", f"{r['backhaul'] / 1e6:.1f} ({r['group_bytes'] / 1e6:.1f})",
                          "/".join(str(o.get(k, 0)) for k in ("aggregated", "late", "stale", "lost", "unapplied")),
                          f"{ups[len(ups) // 2]:.2f}" if ups else "-",
                          f"{errs[min(len(errs) - 1, int(0.99 * len(errs)))]:.2f} ({len(errs)})" if errs else "-",
                          f"{r['misses']} ({r['late_ms'] / 1000:.0f} s)",
                          str(r["status"]), f"{r['wall']:.0f}"]))
    # The figure is tools/plot's, over the runs of this bench (the same axes as `tools/plot RUN_DIR ...`).
    runs = [os.path.join(args.out, name) for name in results if results[name]["evals"]]
    if runs:
        sys.path.insert(0, os.path.join(ROOT, "tools"))
        try:
            import plot
        except ImportError:
            print("figure: not written (matplotlib missing; tools/plot --setup)")
            return
        figure = os.path.join(args.out, "fedtune-loss.png")
        plot.plot_fedtune([plot.fedtune_curve(run) for run in runs], figure)
        print(f"\nfigure: {figure}")


if __name__ == "__main__":
    main()
