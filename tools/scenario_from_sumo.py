#!/usr/bin/env python3
"""Turn a SUMO run into Convoy's bundled default scenario.

Called by tools/make-default-scenario (run that, not this). Inputs are the
SUMO network (.net.xml) and the raw FCD output of a SUMO run that started at
t=0 and includes a warm-up; outputs are

  traces/monaco.fcd.xml  the FCD trace with the warm-up cut off and the times
                         shifted so that the first timestep is t=0
  maps/monaco.yaml       the map: cloud, macro cell, edge servers, RSUs, links
  maps/default.yaml      the default scenario, with the two RSU faults placed
                         on the RSUs that carry the most vehicles at the time

Everything is deterministic: no randomness, stable sort orders, fixed
rounding. Only the Python standard library and sumolib are used.
"""

import argparse
import math
import os
import sys
import xml.etree.ElementTree as ET

import sumolib

# Road types whose junctions count as "major" when choosing RSU sites.
MAJOR_TYPES = ("highway.motorway", "highway.trunk", "highway.primary",
               "highway.secondary", "highway.tertiary")
TLS_BONUS = 2.0    # prefer a junction with traffic lights over a plain one



# Every vehicle carries a Jetson AGX Orin; three tasks, one of them shareable (README, "Workload").
DEFAULT_WORKLOAD = """\
policy: best-rate                # see README, "Path policies"
onboard: { device: jetson-agx-orin, slots: 1, queue: 1 }   # each vehicle's own compute
workload:
  arrival: poisson
  mean_interval: 2.0             # seconds between a vehicle's requests
  freshness: 10                  # seconds a shared result stays usable
  sharing_area: 200              # metres: shared results are valid within one such square
  tasks:
    - { name: scene-caption, weight: 3, model: llama-3-8b, input_tokens: 256, output_tokens: 32, deadline: 5.0, payload_bytes: 20000, result_bytes: 2000, shareable: true }
    - { name: route-advice, weight: 1, model: llama-2-13b, input_tokens: 512, output_tokens: 64, deadline: 8.0, payload_bytes: 8000, result_bytes: 4000 }
    - { name: lane-hint, weight: 1, model: llama-3-8b-q4, input_tokens: 128, output_tokens: 16, deadline: 3.0, payload_bytes: 30000, result_bytes: 500 }
"""

def log(msg):
    print("[scenario] " + msg, file=sys.stderr)


# ---------------------------------------------------------------- trace ----

def cut_trace(raw_path, out_path, warmup, duration, header):
    """Copy timesteps [warmup, warmup+duration) from raw_path to out_path,
    with times shifted by -warmup. Returns a list of (t, [(id, x, y)])."""
    steps = []
    with open(out_path, "w", encoding="utf-8", newline="\n") as out:
        out.write('<?xml version="1.0" encoding="UTF-8"?>\n\n')
        out.write("<!--\n" + header + "-->\n\n")
        out.write('<fcd-export xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                  'xsi:noNamespaceSchemaLocation="http://sumo.dlr.de/xsd/fcd_file.xsd">\n')
        for _, el in ET.iterparse(raw_path, events=("end",)):
            if el.tag != "timestep":
                continue
            t = float(el.get("time"))
            if warmup - 1e-6 <= t < warmup + duration - 1e-6:
                ts = t - warmup
                vehicles = el.findall("vehicle")
                if not vehicles:
                    out.write('    <timestep time="%.2f"/>\n' % ts)
                else:
                    out.write('    <timestep time="%.2f">\n' % ts)
                    for v in vehicles:
                        attrs = " ".join('%s="%s"' % (k, v.get(k)) for k in v.keys())
                        out.write("        <vehicle %s/>\n" % attrs)
                    out.write("    </timestep>\n")
                steps.append((ts, [(v.get("id"), float(v.get("x")), float(v.get("y")))
                                   for v in vehicles]))
            el.clear()
        out.write("</fcd-export>\n")
    if not steps:
        sys.exit("no timesteps in [%g, %g) in %s" % (warmup, warmup + duration, raw_path))
    return steps


def trace_stats(steps):
    first, last = {}, {}
    for t, vs in steps:
        for vid, _, _ in vs:
            first.setdefault(vid, t)
            last[vid] = t
    lives = sorted(last[v] - first[v] + 1 for v in first)
    conc = [len(vs) for _, vs in steps]
    return {
        "vehicles": len(first),
        "peak": max(conc),
        "mean": sum(conc) / len(conc),
        "at_t0": conc[0],
        "span": (steps[0][0], steps[-1][0]),
        "alive20": sum(1 for x in lives if x >= 20) / len(lives),
        "median_life": lives[len(lives) // 2],
        "samples": sum(conc),
    }


# ----------------------------------------------------------------- RSUs ----

def candidate_sites(net):
    """Junctions that are either signalised or where a major road meets at
    least two other roads. Returns [(id, x, y, is_tls)], sorted by id."""
    out = []
    for node in net.getNodes():
        if node.getType() in ("dead_end", "internal"):
            continue
        edges = {e.getID() for e in node.getIncoming() + node.getOutgoing()
                 if e.getFunction() != "internal"}
        # count roads, not directions: an edge and its reverse are one road
        roads = {eid[1:] if eid.startswith("-") else eid for eid in edges}
        is_tls = node.getType().startswith("traffic_light")
        major = any(e.getType() in MAJOR_TYPES
                    for e in node.getIncoming() + node.getOutgoing())
        if is_tls or (major and len(roads) >= 3):
            x, y = node.getCoord()[:2]
            out.append((node.getID(), x, y, is_tls))
    out.sort(key=lambda c: c[0])
    return out


def place_rsus(cands, pts, radius, spacing, n_min, n_max, min_gain):
    """Greedy maximum coverage of the FCD sample points pts by discs of the
    given radius centred on candidate junctions, at least `spacing` apart."""
    r2 = radius * radius
    # Bucket the points on a grid so each candidate only looks nearby.
    cell = radius
    grid = {}
    for i, (x, y) in enumerate(pts):
        grid.setdefault((int(x // cell), int(y // cell)), []).append(i)

    def covered_by(x, y):
        gx, gy = int(x // cell), int(y // cell)
        res = []
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for i in grid.get((gx + dx, gy + dy), ()):
                    px, py = pts[i]
                    if (px - x) ** 2 + (py - y) ** 2 <= r2:
                        res.append(i)
        return res

    cover = {c[0]: set(covered_by(c[1], c[2])) for c in cands}
    chosen, done = [], set()
    while len(chosen) < n_max:
        best, best_score = None, 0.0
        for c in cands:
            if any((c[1] - s[1]) ** 2 + (c[2] - s[2]) ** 2 < spacing ** 2 for s in chosen):
                continue
            gain = len(cover[c[0]] - done)
            score = gain * (TLS_BONUS if c[3] else 1.0)
            if score > best_score:   # strict: ties keep the first (by id)
                best, best_score = c, score
        if best is None:
            break
        gain = len(cover[best[0]] - done)
        if len(chosen) >= n_min and gain < min_gain * len(pts):
            break
        chosen.append(best)
        done |= cover[best[0]]
    return chosen, len(done) / len(pts)


def cluster_edges(rsus, k):
    """Split RSUs into k groups served by one edge server each: start from
    contiguous groups along the principal axis of the RSU layout, then run
    Lloyd iterations so that every RSU is served by its nearest edge."""
    n = len(rsus)
    mx = sum(r["x"] for r in rsus) / n
    my = sum(r["y"] for r in rsus) / n
    sxx = sum((r["x"] - mx) ** 2 for r in rsus)
    syy = sum((r["y"] - my) ** 2 for r in rsus)
    sxy = sum((r["x"] - mx) * (r["y"] - my) for r in rsus)
    ang = 0.5 * math.atan2(2 * sxy, sxx - syy)
    ux, uy = math.cos(ang), math.sin(ang)
    order = sorted(range(n), key=lambda i: (rsus[i]["x"] - mx) * ux + (rsus[i]["y"] - my) * uy)
    assign = [0] * n
    for rank, i in enumerate(order):
        assign[i] = rank * k // n
    for _ in range(100):
        cents = []
        for j in range(k):
            members = [rsus[i] for i in range(n) if assign[i] == j]
            cents.append((sum(r["x"] for r in members) / len(members),
                          sum(r["y"] for r in members) / len(members)))
        new = [min(range(k), key=lambda j: ((rsus[i]["x"] - cents[j][0]) ** 2 +
                                            (rsus[i]["y"] - cents[j][1]) ** 2, j))
               for i in range(n)]
        if new == assign or len(set(new)) < k:
            break
        assign = new
    return assign, cents


# ------------------------------------------------------------------ main ----

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--net", required=True)
    ap.add_argument("--raw-fcd", required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--warmup", type=float, required=True)
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--radius", type=float, default=250.0)
    ap.add_argument("--spacing", type=float, default=250.0)
    ap.add_argument("--min-rsus", type=int, default=8)
    ap.add_argument("--max-rsus", type=int, default=12)
    ap.add_argument("--provenance", default="")
    args = ap.parse_args()

    trace_path = os.path.join(args.repo, "traces", "monaco.fcd.xml")
    map_path = os.path.join(args.repo, "maps", "monaco.yaml")
    scen_path = os.path.join(args.repo, "maps", "default.yaml")
    for p in (trace_path, map_path):
        os.makedirs(os.path.dirname(p), exist_ok=True)

    header = (
        "  Convoy default trace: Monaco, %g s of passenger-car traffic.\n"
        "  Generated by tools/make-default-scenario; do not edit by hand.\n"
        "  Road network from OpenStreetMap data (c) OpenStreetMap contributors,\n"
        "  available under the Open Database License 1.0\n"
        "  (https://www.openstreetmap.org/copyright).\n"
        "  Simulated with Eclipse SUMO; x/y are metres in the frame of the SUMO\n"
        "  network built from that extract. SUMO ran from t=0; the first %g s\n"
        "  (warm-up) are cut off and the times shifted so the trace starts at 0.\n"
        "%s" % (args.duration, args.warmup,
                "".join("  %s\n" % l for l in args.provenance.split("\n") if l)))
    steps = cut_trace(args.raw_fcd, trace_path, args.warmup, args.duration, header)
    st = trace_stats(steps)

    net = sumolib.net.readNet(args.net)
    pts = [(x, y) for _, vs in steps for _, x, y in vs]
    cands = candidate_sites(net)
    log("%d candidate junctions (%d signalised)" % (len(cands), sum(c[3] for c in cands)))
    chosen, coverage = place_rsus(cands, pts, args.radius, args.spacing,
                                  args.min_rsus, args.max_rsus, min_gain=0.02)
    if len(chosen) < args.min_rsus:
        sys.exit("could only place %d RSUs" % len(chosen))

    # Number RSUs west to east (then south to north) so ids read left to right.
    chosen.sort(key=lambda c: (round(c[1], 1), round(c[2], 1)))
    rsus = []
    for i, c in enumerate(chosen):
        rsus.append({"id": "rsu-%d" % (i + 1), "junction": c[0], "tls": c[3],
                     "x": round(c[1], 1), "y": round(c[2], 1)})
    r2 = args.radius ** 2

    def load(r, t0=None, t1=None):
        return sum(1 for t, vs in steps if (t0 is None or t0 <= t < t1)
                   for _, x, y in vs if (x - r["x"]) ** 2 + (y - r["y"]) ** 2 <= r2)

    for r in rsus:
        r["load"] = load(r)
    # About half the RSUs get compute: every other one in order of load, so
    # both busy and quiet areas have some RSUs with and some without.
    by_load = sorted(rsus, key=lambda r: (-r["load"], r["id"]))
    for rank, r in enumerate(by_load):
        r["compute"] = (rank % 2 == 0)

    k = 3 if len(rsus) >= 9 else 2
    assign, cents = cluster_edges(rsus, k)
    # Number edges by the lowest RSU id they serve.
    groups = sorted(range(k), key=lambda j: min(i for i in range(len(rsus)) if assign[i] == j))
    edges = []
    for n, j in enumerate(groups):
        members = [rsus[i] for i in range(len(rsus)) if assign[i] == j]
        edges.append({"id": "edge-%d" % (n + 1), "x": round(cents[j][0], 1),
                      "y": round(cents[j][1], 1), "rsus": [r["id"] for r in members]})
        for r in members:
            r["edge"] = "edge-%d" % (n + 1)

    # Macro cell: centred on the network, covering all of it.
    xmin, ymin, xmax, ymax = net.getBoundary()
    cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
    mrad = math.ceil((math.hypot(xmax - xmin, ymax - ymin) / 2 + 100) / 50) * 50

    # Faults: the RSU with the most vehicle samples within its radius during
    # the fault window gets the fault; the second fault picks another RSU.
    faults = []
    used = set()
    for at, mode, dur in ((30, "crash", 20), (70, "hang", 10)):
        ranked = sorted(((load(r, at, at + dur), r["id"]) for r in rsus if r["id"] not in used),
                        key=lambda p: (-p[0], p[1]))
        used.add(ranked[0][1])
        faults.append((at, ranked[0][1], mode, dur, ranked[0][0], ranked[1]))

    # ------------------------------------------------------------ write ----
    with open(map_path, "w", encoding="utf-8", newline="\n") as f:
        w = f.write
        w("# Convoy map: Monaco (net coordinates of the SUMO network built from the OSM extract).\n")
        w("# Generated by tools/make-default-scenario; do not edit by hand.\n")
        w("# Road data (c) OpenStreetMap contributors, ODbL 1.0, https://www.openstreetmap.org/copyright\n")
        w("# RSUs sit at major junctions (signalised where possible), chosen greedily to cover\n")
        w("# the most FCD samples of traces/monaco.fcd.xml; %.1f%% of samples are within some RSU.\n"
          % (100 * coverage))
        w("name: monaco\n")
        w("cloud:\n")
        w("  id: cloud\n")
        w("  compute: { device: a100-80gb, slots: 8, queue: 64 }\n")
        w("macro:                      # optional wide-area cell: no compute, a path to the cloud\n")
        w("  id: macro\n")
        w("  x: %.1f\n" % cx)
        w("  y: %.1f\n" % cy)
        w("  radius: %d\n" % mrad)
        w("edges:\n")
        for e in edges:
            w("  - id: %s\n" % e["id"])
            w("    x: %.1f\n" % e["x"])
            w("    y: %.1f\n" % e["y"])
            w("    rsus: [%s]\n" % ", ".join(e["rsus"]))
            w("    compute: { device: rtx-4090, slots: 8, queue: 32 }\n")
        w("rsus:\n")
        for r in rsus:
            w("  - id: %s%s\n" % (r["id"], "   # junction %s%s" % (
                r["junction"], ", traffic lights" if r["tls"] else "")))
            w("    x: %.1f\n" % r["x"])
            w("    y: %.1f\n" % r["y"])
            w("    radius: %g\n" % args.radius)
            if r["compute"]:
                w("    compute: { device: jetson-agx-orin, slots: 1, queue: 4 }\n")
        w("links:\n")
        w("  cellular: { bandwidth_mhz: 20, tx_power_dbm: 23, noise_dbm: -80 }\n")
        w("  macro: { bandwidth_mhz: 10, tx_power_dbm: 23, noise_dbm: -99 }   # thermal noise over 10 MHz plus a 5 dB noise figure\n")
        w("  backhaul: { latency_ms: 2, jitter_ms: 0.2, bandwidth_mbps: 1000, loss: 0 }\n")
        w("  wan: { latency_ms: 30, jitter_ms: 3, bandwidth_mbps: 1000, loss: 0 }\n")
        w("  v2v: { range_m: 300 }\n")

    with open(scen_path, "w", encoding="utf-8", newline="\n") as f:
        w = f.write
        w("# Convoy default scenario: Monaco, ~%d vehicles at peak, two RSU faults.\n"
          % (int(round(st["peak"] / 5.0)) * 5))
        w("# Generated by tools/make-default-scenario; do not edit by hand.\n")
        w("# Each fault hits the RSU with the most vehicle samples within its radius\n")
        w("# during the fault window (computed from the trace).\n")
        w("name: monaco-default\n")
        w("map: monaco.yaml                 # relative to this file\n")
        w("trace: ../traces/monaco.fcd.xml  # relative to this file\n")
        w("duration: 120                    # seconds of emulated time\n")
        w("seed: 1\n")
        w(DEFAULT_WORKLOAD)
        w("liveness:\n")
        w("  beacon_interval: 0.1           # seconds\n")
        w("  suspect_after: 2               # missed beacons\n")
        w("  dead_after: 3\n")
        w("faults:\n")
        for at, node, mode, dur, n, _ in faults:
            w("  - { at: %d, node: %s, mode: %s, for: %d }%s\n" % (
                at, node, mode, dur, "   # %d vehicle samples in range during [%d, %d) s"
                % (n, at, at + dur)))

    # --------------------------------------------------------- report ----
    log("trace: %d vehicles, peak %d concurrent (mean %.1f, %d at t=0), t=%g..%g s, "
        "%.0f%% alive >= 20 s (median %g s), %d samples"
        % (st["vehicles"], st["peak"], st["mean"], st["at_t0"], st["span"][0], st["span"][1],
           100 * st["alive20"], st["median_life"], st["samples"]))
    log("coverage: %.1f%% of FCD samples within %g m of some RSU (%d RSUs)"
        % (100 * coverage, args.radius, len(rsus)))
    for r in rsus:
        log("  %s at (%.1f, %.1f) junction %s%s, %s, load %d samples%s"
            % (r["id"], r["x"], r["y"], r["junction"], " [tls]" if r["tls"] else "",
               r["edge"], r["load"], ", compute" if r["compute"] else ""))
    for e in edges:
        log("  %s at (%.1f, %.1f) serves %s" % (e["id"], e["x"], e["y"], ", ".join(e["rsus"])))
    for at, node, mode, dur, n, runner_up in faults:
        log("fault: %s %s at %d for %d s: %d samples in range (next best %s with %d)"
            % (mode, node, at, dur, n, runner_up[1], runner_up[0]))


if __name__ == "__main__":
    main()
