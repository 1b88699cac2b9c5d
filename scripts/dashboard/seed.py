#!/usr/bin/env python3
"""Give a fresh fedagg server something to show on its dashboard, through the Python package:
a central-DP federation with three finished rounds (accuracy reported on each) and a fourth
round open with two of its four submissions in, and a SecAgg federation with no round yet.

    seed.py URL ADMIN_TOKEN      (prints the DP federation's id)
"""
import sys
import threading
import time

import numpy as np

import fedagg

url, token = sys.argv[1], sys.argv[2]
admin = fedagg.Admin(url, token)
m = 100
dp = admin.create_federation({
    "name": "hospitals-dp", "vector_len": m, "min_clients": 3, "max_clients": 10,
    "phase_timeout_secs": 3600,
    "mode": {"kind": "dp", "clip": 1.0, "noise_multiplier": 1.1, "sampling_rate": 1.0,
             "epsilon_budget": 10.0, "delta": 1e-5},
})
admin.create_federation({
    "name": "banks-secagg", "vector_len": 5000, "min_clients": 5, "max_clients": 50,
    "phase_timeout_secs": 60,
    "mode": {"kind": "secagg", "clip": 1.0, "levels": 65536, "max_weight": 1000,
             "dropout_rate": 0.2, "corrupt_fraction": 0.05},
})
fid = dp["id"]
clients = [fedagg.Client.enroll(url, admin.enrollment_code(fid, label=f"hospital-{i}"))
           for i in range(1, 5)]
rng = np.random.default_rng(7)


def contribute(c):
    c.contribute(rng.normal(0, 0.01, m).astype(np.float32), 1)


for r, accuracy in zip(range(1, 4), (0.71, 0.80, 0.845)):
    admin.open_round(fid)
    threads = [threading.Thread(target=contribute, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    admin.report_metrics(fid, r, accuracy=accuracy, loss=1.0 - accuracy)
# Round 4 stays open: two of four have submitted (their threads end with this process; what the
# server accepted stays).
admin.open_round(fid)
for c in clients[:2]:
    threading.Thread(target=contribute, args=(c,), daemon=True).start()
for _ in range(300):
    if admin.round(fid, 4)["received"] == 2:
        break
    time.sleep(0.1)
print(fid)
