#!/usr/bin/env python3
"""Known-answer vectors for fedagg-dp's distributed discrete Gaussian accountant (`ddg`).

They come from the authors' own implementation: `distributed_dp/accounting_utils.py` of
google-research/federated (Kairouz, Liu and Steinke's code for the DDG paper), imported from a
checkout given on the command line and run unchanged. That module imports tensorflow_privacy
for one function, the RDP-to-epsilon conversion; it is supplied here from dp-accounting 0.6
(`rdp_privacy_accountant.compute_epsilon`, the same conversion), so that TensorFlow is not
needed.

Usage (numpy, scipy and dp-accounting==0.6.0 installed):
    scripts/ddg-vectors.py PATH/TO/federated > crates/fedagg-dp/tests/data/ddg-vectors.txt
"""
import math
import sys
import types

from dp_accounting.rdp import rdp_privacy_accountant

shim = types.ModuleType("tensorflow_privacy")


def get_privacy_spent(orders, rdp, target_delta):
    eps, order = rdp_privacy_accountant.compute_epsilon(orders, rdp, target_delta)
    return eps, target_delta, order


shim.get_privacy_spent = get_privacy_spent
sys.modules["tensorflow_privacy"] = shim
sys.path.insert(0, sys.argv[1] + "/distributed_dp")
import accounting_utils as au  # noqa: E402

ORDERS = [2, 3, 8, 32, 128, 256]
BETA = 0.6065306597126334

print("# gamma local_stddev n clip beta dim q steps delta epsilon "
      + " ".join(f"rdp{a}" for a in ORDERS))
print("# from google-research/federated distributed_dp/accounting_utils.py "
      "(ddgauss_epsilon, compute_rdp_dgaussian), by scripts/ddg-vectors.py")
cases = []
for dim in (16, 1024, 65536):
    for n in (3, 10, 100, 1000):
        for z in (0.7, 2.0):
            for gamma in (1.0 / 8, 1.0 / 1024):
                for q, steps in ((1.0, 1), (0.1, 100), (0.01, 1000)):
                    cases.append((gamma, z / n ** 0.5, n, 1.0, BETA, dim, q, steps, 1e-5))
for (gamma, local, n, clip, beta, dim, q, steps, delta) in cases:
    eps, _ = au.ddgauss_epsilon(gamma, local, n, clip, beta, dim, q, steps, delta)
    scale = 1.0 / (gamma + au.DIV_EPSILON)
    l2 = au.rounded_l2_norm_bound(clip * scale, beta, dim) / scale
    l1 = au.rounded_l1_norm_bound(l2 * scale, dim) / scale
    # the inputs ddgauss_epsilon gives compute_rdp_dgaussian, for the curve at a few orders
    tau = 10 * sum(math.exp(-2 * (math.pi * local * scale) ** 2 * (k / (k + 1)))
                   for k in range(1, n))
    sd = n ** 0.5 * local
    rdp = au.compute_rdp_dgaussian(q, l1 / sd, l2 / sd, tau, dim, steps, ORDERS)
    print(" ".join(repr(float(x)) for x in
                   (gamma, local, n, clip, beta, dim, q, steps, delta, eps, *rdp)))
