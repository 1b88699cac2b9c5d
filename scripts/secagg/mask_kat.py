#!/usr/bin/env python3
"""Recompute the known answers in crates/fedagg-secagg/tests/kat.rs with independent code:
OpenSSL's AES-256-CTR (the `openssl` command) and HKDF-SHA256 from Python's hmac/hashlib."""
import hashlib
import hmac
import subprocess


def keystream(key: bytes, n: int) -> bytes:
    out = subprocess.run(
        ["openssl", "enc", "-aes-256-ctr", "-K", key.hex(), "-iv", "00" * 16, "-nosalt"],
        input=b"\0" * n, capture_output=True, check=True)
    return out.stdout


def hkdf(ikm: bytes, salt: bytes, info: bytes, n: int = 32) -> bytes:
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out, i = out + t, i + 1
    return out[:n]


print("keystream:", keystream(bytes(range(1, 33)), 48).hex())
lo, hi, bits = 3, 11, 33
key = hkdf(bytes([7]) * 32, bytes([9]) * 32,
           b"fedagg-secagg-v1 pair-mask" + lo.to_bytes(4, "little") + hi.to_bytes(4, "little"))
ks = keystream(key, 5 * 6)
print("pair mask:", [int.from_bytes(ks[5 * i:5 * i + 5], "little") % (1 << bits) for i in range(6)])
