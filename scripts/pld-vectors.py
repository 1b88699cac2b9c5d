#!/usr/bin/env python3
"""Known-answer vectors for fedagg-dp's PLD accountant (`pld`), from dp-accounting 0.6's
PLDAccountant: add/remove adjacency, its default discretisation interval (1e-4) and
connect-the-dots, for the Poisson-subsampled Gaussian.

Usage (dp-accounting==0.6.0 installed):
    scripts/pld-vectors.py [MOST_STEPS] > crates/fedagg-dp/tests/data/pld-vectors.txt
"""
import sys

import dp_accounting
from dp_accounting.pld import pld_privacy_accountant

print("# q sigma steps delta epsilon")
print("# from dp-accounting 0.6.0 PLDAccountant (ADD_OR_REMOVE_ONE, interval 1e-4), "
      "by scripts/pld-vectors.py")
# steps first, so that the quick cases come out before the slow ones; an argument limits the
# steps: `scripts/pld-vectors.py 100`. Without sampling, 10^4 steps at sigma 1 and 0.6 exhaust
# dp-accounting's memory (arrays of 3e8 points; killed at 23.8 GB): those cases are recorded as
# comments, and the closed form (`pld::gaussian_epsilon`) is their reference. Run it under a
# memory limit (`ulimit -v 12000000`) so that they fail with a MemoryError instead.
most = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
for steps in (s for s in (1, 100, 10_000) if s <= most):
    for q in (1.0, 0.1, 0.01):
        for sigma in (0.6, 1.0, 2.0, 4.0):
            acc = pld_privacy_accountant.PLDAccountant(
                dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE)
            event = dp_accounting.GaussianDpEvent(sigma)
            if q < 1.0:
                event = dp_accounting.PoissonSampledDpEvent(q, event)
            try:
                acc.compose(event, steps)
            except MemoryError:
                print(f"# {q!r} {sigma!r} {steps}: dp-accounting ran out of memory", flush=True)
                continue
            for delta in (1e-5, 1e-7):
                print(f"{q!r} {sigma!r} {steps} {delta!r} {acc.get_epsilon(delta)!r}",
                      flush=True)
