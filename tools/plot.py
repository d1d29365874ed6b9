#!/usr/bin/env python3
"""Figures of a Convoy run, from RUN_DIR/run.sqlite, RUN_DIR/map.yaml and RUN_DIR/trajectories/ (the run's own outputs).

Usage: tools/plot RUN_DIR [RUN_DIR ...] [--out DIR]     (run through tools/plot, which provides the packages)

Writes into DIR (default RUN_DIR/plots of the first run):
  latency_cdf.png   CDF of the latency of completed requests, one curve per access path
  timeline.png      per second: success rate, p95 latency, vehicles alive and RSUs up;
                    fault windows shaded
  coverage_map.png  RSU coverage circles and edge servers from map.yaml, vehicle tracks from the run
                    (every 5th sample, limited to the run's duration), faulted RSUs in red
  rsu_load.png      attempts addressed to each RSU over time (5 s bins), per RSU by outcome,
                    and completed requests by serving node

  fedtune.png       runs with federated fine-tuning: held-out loss and perplexity (mean over the
                    clients' domains, `fed_evals` domain '*') against rounds and against emulated
                    time, one line per run given (the paper's Fig. 5 and 6 from Convoy's own runs).
                    A "round" is the number of client updates aggregated so far divided by the
                    number of clients, so asynchronous schemes (one version per update) and
                    synchronous ones share an axis.

With several RUN_DIRs the per-run figures are written for the first; fedtune.png compares them all.

The per-second figures use the definitions of `convoy export`'s timeseries.csv: second s is
[s, s+1); success rate = completed / (completed + failed + expired) of the requests finished in
it; p95 is the nearest-rank percentile; nodes and faults are sampled at s + 0.5.
"""
import argparse
import math
import os
import sqlite3
import struct
import sys
import urllib.parse

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

TRACK_STRIDE = 5  # keep every 5th sample of each vehicle
FAULT_COLOURS = {"crash": "tab:red", "hang": "tab:orange"}


def die(message):
    print(f"tools/plot: error: {message}", file=sys.stderr)
    sys.exit(2)


def open_run(run_dir):
    """A read-only connection to RUN_DIR/run.sqlite, or a clear error."""
    if not os.path.isdir(run_dir):
        die(f"{run_dir}: no such directory")
    path = os.path.join(run_dir, "run.sqlite")
    if not os.path.isfile(path):
        die(f"{run_dir}: not a Convoy run directory (no run.sqlite)")
    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True)
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as error:
        die(f"{path}: not a Convoy run database ({error})")
    missing = {"grdb_migrations", "requests", "attempts", "nodes", "faults", "run_info"} - tables
    if missing:
        die(f"{path}: not a Convoy run database (missing tables: {', '.join(sorted(missing))})")
    return db


def nearest_rank(values, p):
    values = np.sort(np.asarray(values, dtype=float))
    if len(values) == 0:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(values)))
    return values[min(rank, len(values)) - 1]


def alive_at(frame, m):
    """Rows of `frame` (started_at, ended_at) active at instant m."""
    return frame[(frame.started_at <= m) & (frame.ended_at.isna() | (m < frame.ended_at))]


def shade_faults(ax, faults, end, label=True):
    for _, f in faults.iterrows():
        stop = f.ended_at if not pd.isna(f.ended_at) else end
        ax.axvspan(f.started_at, stop, color=FAULT_COLOURS.get(f["mode"], "tab:purple"), alpha=0.15, lw=0)
        if label:
            ax.text(f.started_at, 1.0, f" {f.node_id} {f['mode']}", transform=ax.get_xaxis_transform(),
                    va="top", ha="left", fontsize=8)


def per_second(requests, nodes, faults):
    """The per-second series (the same definitions as timeseries.csv)."""
    times = pd.concat([requests.created_at, requests.finished_at, nodes.started_at, nodes.ended_at,
                       faults.started_at, faults.ended_at]).dropna()
    if times.empty:
        return pd.DataFrame(columns=["second", "completed", "failed", "expired", "p95_ms", "vehicles", "rsus"])
    seconds = np.arange(0, int(math.floor(times.max())) + 1)
    finished = requests.dropna(subset=["status", "finished_at"]).copy()
    finished["second"] = np.floor(finished.finished_at).astype(int)
    counts = finished.pivot_table(index="second", columns="status", values="request_id", aggfunc="count")
    counts = counts.reindex(seconds).fillna(0)
    series = pd.DataFrame({"second": seconds})
    for status in ("completed", "failed", "expired"):
        series[status] = counts[status].to_numpy() if status in counts else 0
    done = finished[(finished.status == "completed") & finished.latency_ms.notna()]
    p95 = done.groupby("second").latency_ms.apply(lambda v: nearest_rank(v, 95))
    series["p95_ms"] = p95.reindex(seconds).to_numpy()
    vehicles = nodes[nodes.role == "vehicle"]
    rsus = nodes[nodes.role == "rsu"]
    rsu_faults = faults[faults.node_id.isin(set(rsus.node_id))]
    series["vehicles"] = [len(alive_at(vehicles, s + 0.5)) for s in seconds]
    series["rsus"] = [len(set(alive_at(rsus, s + 0.5).node_id) - set(alive_at(rsu_faults, s + 0.5).node_id))
                      for s in seconds]
    return series


def plot_latency_cdf(requests, out):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    done = requests[(requests.status == "completed") & requests.latency_ms.notna()]
    for path, group in sorted(done.groupby(done.path.fillna("(none)"))):
        values = np.sort(group.latency_ms.to_numpy())
        ax.step(values, np.arange(1, len(values) + 1) / len(values), where="post",
                label=f"{path} (n={len(values)}, p50 {nearest_rank(values, 50):.0f} ms)")
    if done.empty:
        ax.text(0.5, 0.5, "no completed requests", transform=ax.transAxes, ha="center")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("fraction of completed requests")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title("Latency CDF by access path")
    if not done.empty:
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def plot_timeline(series, faults, out):
    fig, axes = plt.subplots(3, 1, figsize=(9, 7.5), sharex=True)
    end = series.second.max() + 1 if not series.empty else 1
    x = series.second + 0.5
    finished = series.completed + series.failed + series.expired
    rate = np.where(finished > 0, 100 * series.completed / finished.where(finished > 0, 1), np.nan)
    axes[0].plot(x, rate, marker=".", lw=1)
    axes[0].set_ylabel("success rate (%)")
    axes[0].set_ylim(-2, 105)
    axes[1].plot(x, series.p95_ms, marker=".", lw=1, color="tab:green")
    axes[1].set_ylabel("p95 latency (ms)")
    axes[2].step(series.second, series.vehicles, where="post", label="vehicles alive")
    axes[2].step(series.second, series.rsus, where="post", label="RSUs up")
    axes[2].set_ylabel("count")
    axes[2].legend(loc="upper right", fontsize=8)
    axes[2].set_xlabel("emulated time (s)")
    for index, ax in enumerate(axes):
        shade_faults(ax, faults, end, label=index == 0)
        ax.grid(alpha=0.3)
    axes[0].set_title("Requests per second (finished in that second); faults shaded")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def read_tracks(run_dir, until):
    """{vehicle: ([x], [y])}: every TRACK_STRIDE-th sample with time <= until (None: all), from the
    run's own trajectory files (RUN_DIR/trajectories/*.traj, in the run's metric frame, written by
    the launcher whatever the trace's format, projection or compression). Layout: TrajectoryFile.swift."""
    tracks = {}
    directory = os.path.join(run_dir, "trajectories")
    for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
        with open(os.path.join(directory, name), "rb") as f:
            data = f.read()
        if data[:8] != b"CVYTRAJ\0" or struct.unpack_from("<I", data, 8)[0] != 1:
            print(f"tools/plot: warning: {name} is not a version-1 trajectory file; skipped", file=sys.stderr)
            continue
        n = struct.unpack_from("<I", data, 12)[0]
        vehicle = data[16:16 + n].decode("utf-8", "replace")
        count = struct.unpack_from("<Q", data, 24 + n)[0]
        xs, ys = [], []
        for i in range(count):
            t, x, y = struct.unpack_from("<3d", data, 32 + n + 40 * i)
            if until is not None and t > until:
                break
            if i % TRACK_STRIDE == 0:
                xs.append(x)
                ys.append(y)
        if xs:
            tracks[vehicle] = (xs, ys)
    return tracks


def plot_coverage(run_dir, info, faults, out):
    map_path = os.path.join(run_dir, "map.yaml")
    if not os.path.isfile(map_path):
        print(f"tools/plot: warning: {map_path} missing; no coverage map", file=sys.stderr)
        return False
    with open(map_path) as f:
        layout = yaml.safe_load(f) or {}
    fig, ax = plt.subplots(figsize=(8, 8))
    duration = float(info["duration"]) if "duration" in info else None
    tracks = read_tracks(run_dir, duration)
    if tracks:
        for xs, ys in tracks.values():
            ax.plot(xs, ys, color="0.45", lw=0.6, alpha=0.6)
        ax.plot([], [], color="0.45", lw=0.6, label=f"vehicle tracks ({len(tracks)})")
    else:
        print(f"tools/plot: warning: no trajectories in {run_dir}/trajectories; no vehicle tracks", file=sys.stderr)
    faulted = set(faults.node_id)
    for rsu in layout.get("rsus", []) or []:
        colour = "tab:red" if rsu["id"] in faulted else "tab:blue"
        ax.add_patch(plt.Circle((rsu["x"], rsu["y"]), rsu.get("radius", 0), color=colour, alpha=0.12))
        ax.add_patch(plt.Circle((rsu["x"], rsu["y"]), rsu.get("radius", 0), fill=False, color=colour, lw=1))
        marker = "^" if rsu.get("compute") else "o"
        ax.plot(rsu["x"], rsu["y"], marker, color=colour, ms=6)
        ax.annotate(rsu["id"], (rsu["x"], rsu["y"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    for edge in layout.get("edges", []) or []:
        ax.plot(edge["x"], edge["y"], "s", color="tab:green", ms=8)
        ax.annotate(edge["id"], (edge["x"], edge["y"]), textcoords="offset points", xytext=(4, -10), fontsize=8,
                    color="tab:green")
    ax.plot([], [], "o", color="tab:blue", label="RSU (forwards to its edge)")
    ax.plot([], [], "^", color="tab:blue", label="RSU with compute")
    ax.plot([], [], "o", color="tab:red", label="RSU with a fault")
    ax.plot([], [], "s", color="tab:green", label="edge server")
    ax.set_aspect("equal")
    ax.autoscale_view()
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title(f"Coverage: {layout.get('name', 'map')}" + (f", tracks up to {duration:g} s" if duration else ""))
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.2)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return True


def plot_rsu_load(requests, attempts, nodes, faults, out):
    rsus = sorted(set(nodes[nodes.role == "rsu"].node_id), key=lambda s: (len(s), s))
    to_rsu = attempts[attempts.target.isin(rsus)].copy()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), gridspec_kw={"width_ratios": [2.2, 1.4, 1]})
    if not to_rsu.empty:
        to_rsu["bin"] = (np.floor(to_rsu.sent_at / 5) * 5).astype(int)
        end = int(math.floor(max(to_rsu.sent_at.max(), 0) / 5) * 5)
        bins = np.arange(0, end + 5, 5)
        table = to_rsu.pivot_table(index="bin", columns="target", values="request_id", aggfunc="count")
        table = table.reindex(bins).fillna(0)
        for rsu in rsus:
            if rsu in table:
                axes[0].plot(table.index + 2.5, table[rsu] / 5, label=rsu, lw=1)
        shade_faults(axes[0], faults, end + 5)
        axes[0].legend(fontsize=7, ncol=2)
        outcomes = to_rsu.pivot_table(index="target", columns="outcome", values="request_id", aggfunc="count")
        outcomes = outcomes.reindex([r for r in rsus if r in outcomes.index]).fillna(0)
        bottom = np.zeros(len(outcomes))
        for outcome in outcomes.columns:
            axes[1].bar(outcomes.index, outcomes[outcome], bottom=bottom, label=outcome)
            bottom = bottom + outcomes[outcome].to_numpy()
        axes[1].legend(fontsize=7)
        axes[1].tick_params(axis="x", rotation=60)
    axes[0].set_xlabel("emulated time (s)")
    axes[0].set_ylabel("attempts per second (5 s bins)")
    axes[0].set_title("Attempts addressed to each RSU")
    axes[1].set_ylabel("attempts")
    axes[1].set_title("Attempts per RSU, by outcome")
    served = requests[requests.status == "completed"].served_by.fillna("(none)").value_counts()
    axes[2].barh(served.index[::-1], served.to_numpy()[::-1], color="tab:green")
    axes[2].set_xlabel("completed requests")
    axes[2].set_title("Served by")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def fedtune_curve(run_dir):
    """(label, [(round, loss, perplexity, emulated time)]) of a run's global evaluations, or None."""
    db = open_run(run_dir)
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "fed_evals" not in tables:
        return None
    evals = db.execute("SELECT round, loss, perplexity, at FROM fed_evals WHERE domain = '*' ORDER BY round, at").fetchall()
    if not evals:
        return None
    # Hierarchical: the RSU groups' uploads to the global level are not client updates.
    vehicles = "vehicle_id NOT IN (SELECT aggregated_at FROM fed_rounds WHERE level = 'group')"
    clients = db.execute(f"SELECT COUNT(DISTINCT vehicle_id) FROM fed_updates WHERE {vehicles}").fetchone()[0] or 1
    aggregated = dict(db.execute(
        f"SELECT round, COUNT(*) FROM fed_updates WHERE outcome = 'aggregated' AND {vehicles} GROUP BY round").fetchall())
    scheme = db.execute("SELECT scheme FROM fed_rounds LIMIT 1").fetchone()
    db.close()
    label = os.path.basename(os.path.normpath(run_dir))
    if scheme and scheme[0] not in label:
        label = f"{label} ({scheme[0]})"
    points = []
    for version, loss, ppl, at in evals:
        done = sum(n for r, n in aggregated.items() if r <= version)
        points.append((done / clients, loss, ppl, at))
    return label, points


def plot_fedtune(curves, out):
    """Loss and perplexity against rounds and against emulated time, one line per run."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharey="row")
    for label, points in curves:
        rounds, loss, ppl, at = zip(*points)
        for row, values in enumerate((loss, ppl)):
            axes[row][0].plot(rounds, values, marker="o", ms=3, label=label)
            axes[row][1].plot(at, values, marker="o", ms=3, label=label)
    for row, name in enumerate(("held-out loss", "held-out perplexity")):
        axes[row][0].set_ylabel(f"{name}\n(mean over the clients' domains)")
        for ax in axes[row]:
            ax.grid(alpha=0.3)
    axes[1][0].set_xlabel("round (client updates aggregated / clients)")
    axes[1][1].set_xlabel("emulated time (s)")
    axes[0][1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(prog="tools/plot", description="PNG figures of a Convoy run.")
    parser.add_argument("run_dirs", metavar="RUN_DIR", nargs="+")
    parser.add_argument("--out", metavar="DIR", help="output directory (default: RUN_DIR/plots of the first run)")
    args = parser.parse_args()
    args.run_dir = args.run_dirs[0]
    db = open_run(args.run_dir)
    requests = pd.read_sql_query("SELECT * FROM requests", db)
    attempts = pd.read_sql_query("SELECT * FROM attempts", db)
    nodes = pd.read_sql_query("SELECT * FROM nodes", db)
    faults = pd.read_sql_query("SELECT * FROM faults ORDER BY id", db)
    info = dict(db.execute("SELECT key, value FROM run_info").fetchall())
    db.close()

    out = args.out or os.path.join(args.run_dir, "plots")
    os.makedirs(out, exist_ok=True)
    written = []
    path = os.path.join(out, "latency_cdf.png")
    plot_latency_cdf(requests, path)
    written.append(path)
    path = os.path.join(out, "timeline.png")
    plot_timeline(per_second(requests, nodes, faults), faults, path)
    written.append(path)
    path = os.path.join(out, "coverage_map.png")
    if plot_coverage(args.run_dir, info, faults, path):
        written.append(path)
    path = os.path.join(out, "rsu_load.png")
    plot_rsu_load(requests, attempts, nodes, faults, path)
    written.append(path)
    curves = [c for c in (fedtune_curve(run) for run in args.run_dirs) if c]
    if curves:
        path = os.path.join(out, "fedtune.png")
        plot_fedtune(curves, path)
        written.append(path)
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
