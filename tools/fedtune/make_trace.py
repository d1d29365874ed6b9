#!/usr/bin/env python3
"""Makes the traces of the bundled federated fine-tuning scenarios (standard library only).

One cell: an RSU at (500, 500) with a 100 m radius (maps/fedtune-map.yaml). Users are placed at
random in the cell (seeded), as in the paper's Section V, and drift slowly around their spot; in the
8-user trace two of them drive out of the cell during the run (veh-6 leaves at t = 60 s and comes
back at t = 150 s, veh-7 leaves at t = 100 s for good). CSV time,id,x,y,speed, one sample a second.

    tools/fedtune/make_trace.py 8 400 > traces/fedtune-cell-8.csv
    tools/fedtune/make_trace.py 16 400 > traces/fedtune-cell-16.csv
"""
import math
import random
import sys

users, seconds = int(sys.argv[1]), int(sys.argv[2])
rng = random.Random(20261205 + users)
cx, cy, radius = 500.0, 500.0, 100.0
print("time,id,x,y,speed")
for u in range(users):
    r = radius * 0.9 * math.sqrt(rng.random())
    a = rng.uniform(0, 2 * math.pi)
    hx, hy = cx + r * math.cos(a), cy + r * math.sin(a)
    phase = rng.uniform(0, 2 * math.pi)
    out_dir = a
    for t in range(seconds + 1):
        # A slow drift (5 m circle) around the home spot.
        x = hx + 5 * math.cos(phase + t / 20)
        y = hy + 5 * math.sin(phase + t / 20)
        away = 0.0
        if users == 8 and u == 6:
            # Out at 10 m/s from t = 60 s, back from t = 105 s, home by t = 150 s.
            away = 10 * max(0, min(t - 60, 150 - t, 45))
        if users == 8 and u == 7:
            away = 10 * max(0, t - 100)
        x += away * math.cos(out_dir)
        y += away * math.sin(out_dir)
        speed = 10.0 if away > 0 and (u == 7 or 60 < t < 150) else 0.25
        print(f"{t},veh-{u},{x:.2f},{y:.2f},{speed:.2f}")
