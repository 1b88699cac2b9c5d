"""A real `fedagg serve` on loopback for the package's tests, and its admin.

The binary is $FEDAGG_BIN (scripts/test.sh sets it), else target/debug/fedagg."""

import os
import pathlib
import subprocess

import pytest

import fedagg

ROOT = pathlib.Path(__file__).resolve().parents[3]
ADMIN_TOKEN = "python-test-admin-token-0123456789"


def fedagg_bin() -> str:
    b = os.environ.get("FEDAGG_BIN") or str(ROOT / "target" / "debug" / "fedagg")
    if not os.path.exists(b):
        pytest.exit(f"no fedagg binary at {b}: build it (cargo build) or set FEDAGG_BIN", 2)
    return b


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """The server's URL; it runs for the whole session, with its data in a temporary folder."""
    data = tmp_path_factory.mktemp("server")
    env = dict(os.environ, FEDAGG_ADMIN_TOKEN=ADMIN_TOKEN, FEDAGG_LOG="warn")
    proc = subprocess.Popen(
        [fedagg_bin(), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    line = proc.stdout.readline().strip()
    assert line.startswith("listening on "), line
    yield line[len("listening on ") :]
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture()
def admin(server):
    return fedagg.Admin(server, ADMIN_TOKEN)


@pytest.fixture()
def keygen(tmp_path):
    """A fresh 2048-bit Paillier key pair from `fedagg keygen`: the private key's path."""
    subprocess.run([fedagg_bin(), "keygen", "--dir", str(tmp_path / "keys")], check=True,
                   stdout=subprocess.DEVNULL)
    return tmp_path / "keys" / "paillier.key"
