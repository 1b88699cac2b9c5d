#!/usr/bin/env python3
"""Decrypt fedagg's Paillier ciphertexts with python-paillier (`phe`), for the interop test.

Reads a file of lines `n <hex>`, `p <hex>`, `q <hex>`, then `ct <hex>` lines; prints one hex
plaintext per ciphertext. Exit code 3 when phe is not installed (the test then reports a skip).
"""
import sys

try:
    from phe import paillier
except ImportError:
    sys.exit(3)


def main(path):
    fields = {}
    cts = []
    for line in open(path):
        k, v = line.split()
        if k == "ct":
            cts.append(int(v, 16))
        else:
            fields[k] = int(v, 16)
    pub = paillier.PaillierPublicKey(fields["n"])
    priv = paillier.PaillierPrivateKey(pub, fields["p"], fields["q"])
    for c in cts:
        print(f"{priv.raw_decrypt(c):x}")


if __name__ == "__main__":
    main(sys.argv[1])
