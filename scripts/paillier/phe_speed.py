#!/usr/bin/env python3
"""Time python-paillier (`phe`) per value, the reference our Paillier targets are stated against.

Prints the median of several runs of `raw_encrypt` and `raw_decrypt` (one value each, 2048-bit
key unless given), and whether gmpy2 is in use: python-paillier is several times slower without
it, and the docs compare against it with gmpy2. Run it right after the Rust bench it is compared
with (`cargo bench --no-default-features --features gmp --bench paillier -- ...`), since this
machine's speed varies between hours:

    python3 -m pip install phe==1.5.0 gmpy2
    python3 scripts/paillier/phe_speed.py [bits] [values per run] [runs]
"""
import random
import statistics
import sys
import time

try:
    import phe
    import phe.util
    from phe import paillier
except ImportError:
    sys.exit("python-paillier is not installed: python3 -m pip install phe==1.5.0 gmpy2")


def per_value(op, values):
    """Seconds per value of `op` over `values`."""
    start = time.perf_counter()
    for v in values:
        op(v)
    return (time.perf_counter() - start) / len(values)


def main(bits=2048, count=50, runs=5):
    pub, priv = paillier.generate_paillier_keypair(n_length=bits)
    rng = random.SystemRandom()
    plain = [rng.randrange(pub.n) for _ in range(count)]
    cts = [pub.raw_encrypt(p) for p in plain]
    assert [priv.raw_decrypt(c) for c in cts] == plain
    enc = [per_value(pub.raw_encrypt, plain) for _ in range(runs)]
    dec = [per_value(priv.raw_decrypt, cts) for _ in range(runs)]
    print(f"python-paillier {phe.__version__}, {bits}-bit key, gmpy2: {phe.util.HAVE_GMP}")
    for name, times in (("encrypt", enc), ("decrypt", dec)):
        ms = sorted(t * 1e3 for t in times)
        print(
            f"{name}: median {statistics.median(ms):.2f} ms a value"
            f" ({ms[0]:.2f} to {ms[-1]:.2f} over {runs} runs of {count})"
        )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:4]))
