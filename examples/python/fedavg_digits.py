#!/usr/bin/env python3
"""The seed guide's FedAvg (docs: ../shared/reference/federated-learning-guide.txt, section 3),
federated for real: its SimpleNet on the bundled UCI digits, 20 participants with a Dirichlet
(alpha 0.5) label skew, each contributing through the fedagg Python package over HTTP with
SecAgg, so the server only ever sees the masked sum of each round's updates.

Then the same loop runs in-process, as the guide wrote it, on the very same rounds: the same
participants in each round (those the server picked), the same initial model, the same local
seeds. The two differ only by what SecAgg adds, fixed-point quantization with 2^16 levels, so
their accuracies should agree to within a point.

    examples/python/fedavg_digits.py --backend torch  --fedagg target/debug/fedagg
    examples/python/fedavg_digits.py --backend numpy  --fedagg target/debug/fedagg  # no PyTorch

`--backend torch` is the guide's code (PyTorch's SimpleNet, SGD with momentum); `--backend
numpy` is the same network, loss and optimizer written in numpy, for machines without PyTorch.
The script starts `fedagg serve` on 127.0.0.1 itself (or uses --url and --token), prints each
round, and writes the per-round accuracies of both runs to --out as CSV. It exits non-zero when
the service's accuracy (mean of the last five rounds) is more than --tolerance points from the
in-process loop's.
"""
import argparse
import csv
import gzip
import os
import pathlib
import secrets
import subprocess
import sys
import threading
import time

import numpy as np

import fedagg

ROOT = pathlib.Path(__file__).resolve().parents[2]
DIGITS = ROOT / "crates" / "fedagg-train" / "data" / "digits.csv.gz"
SHAPES = [(256, 64), (256,), (128, 256), (128,), (10, 128), (10,)]  # SimpleNet(64, 256, 10)


def load_digits():
    with gzip.open(DIGITS, "rt") as f:
        rows = np.array([[float(v) for v in r] for r in csv.reader(f)], dtype=np.float32)
    return rows[:, :64] / 16.0, rows[:, 64].astype(np.int64)


def create_non_iid_partition(labels, num_clients, num_classes, alpha, rng):
    """The guide's Dirichlet partition (with a seeded generator)."""
    client_indices = [[] for _ in range(num_clients)]
    for cls in range(num_classes):
        cls_indices = np.where(labels == cls)[0]
        rng.shuffle(cls_indices)
        proportions = rng.dirichlet([alpha] * num_clients)
        proportions = (proportions * len(cls_indices)).astype(int)
        proportions[-1] = len(cls_indices) - proportions[:-1].sum()
        start = 0
        for k, prop in enumerate(proportions):
            client_indices[k].extend(cls_indices[start:start + prop].tolist())
            start += prop
    return [np.array(ix, dtype=np.int64) for ix in client_indices]


class TorchBackend:
    """The guide's SimpleNet and local training, in PyTorch."""

    def __init__(self):
        import torch
        import torch.nn as nn

        self.torch, self.nn = torch, nn

        class SimpleNet(nn.Module):
            def __init__(self, input_dim, hidden_dim, num_classes):
                super().__init__()
                self.net = nn.Sequential(
                    nn.Linear(input_dim, hidden_dim), nn.ReLU(), nn.Dropout(0.2),
                    nn.Linear(hidden_dim, hidden_dim // 2), nn.ReLU(),
                    nn.Linear(hidden_dim // 2, num_classes))

            def forward(self, x):
                return self.net(x)

        torch.set_num_threads(1)
        self.model = SimpleNet(64, 256, 10)
        # Participants train in threads, and dropout draws from torch's global generator: one
        # training at a time keeps each reproducible from its seed (the in-process replay's).
        self.lock = threading.Lock()

    def initial(self, seed):
        self.torch.manual_seed(seed)
        self.model.__init__(64, 256, 10)
        return fedagg.flatten(self.model.state_dict())

    def _load(self, vector):
        sd = fedagg.unflatten(vector, self.model.state_dict())
        self.model.load_state_dict({k: self.torch.from_numpy(v.copy()) for k, v in sd.items()})

    def train(self, vector, X, y, seed, epochs, batch, lr):
        with self.lock:
            return self._train(vector, X, y, seed, epochs, batch, lr)

    def _train(self, vector, X, y, seed, epochs, batch, lr):
        torch = self.torch
        self._load(vector)
        torch.manual_seed(seed)
        self.model.train()
        opt = torch.optim.SGD(self.model.parameters(), lr=lr, momentum=0.9)
        loss_fn = self.nn.CrossEntropyLoss()
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        for _ in range(epochs):
            order = torch.randperm(len(yt))
            for i in range(0, len(yt), batch):
                b = order[i:i + batch]
                opt.zero_grad()
                loss_fn(self.model(Xt[b]), yt[b]).backward()
                opt.step()
        return fedagg.flatten(self.model.state_dict())

    def accuracy(self, vector, X, y):
        with self.lock:
            return self._accuracy(vector, X, y)

    def _accuracy(self, vector, X, y):
        self._load(vector)
        self.model.eval()
        with self.torch.no_grad():
            pred = self.model(self.torch.from_numpy(X)).argmax(1).numpy()
        return float((pred == y).mean())


class NumpyBackend:
    """The same network (dropout 0.2 after the first layer), cross-entropy and SGD with momentum
    0.9, in numpy: for machines without PyTorch."""

    @staticmethod
    def unpack(v):
        out, at = [], 0
        for s in SHAPES:
            n = int(np.prod(s))
            out.append(v[at:at + n].reshape(s).astype(np.float64))
            at += n
        return out

    def initial(self, seed):
        rng = np.random.default_rng(seed)
        parts = []
        for out_dim, in_dim in SHAPES[0::2]:
            bound = 1.0 / np.sqrt(in_dim)  # PyTorch's default for nn.Linear
            parts += [rng.uniform(-bound, bound, (out_dim, in_dim)), rng.uniform(-bound, bound, out_dim)]
        return np.concatenate([p.ravel() for p in parts]).astype(np.float32)

    @staticmethod
    def forward(p, X, rng=None):
        W1, b1, W2, b2, W3, b3 = p
        h1 = np.maximum(X @ W1.T + b1, 0)
        mask = None
        if rng is not None:
            mask = (rng.random(h1.shape) >= 0.2) / 0.8
            h1 = h1 * mask
        h2 = np.maximum(h1 @ W2.T + b2, 0)
        return h1, mask, h2, h2 @ W3.T + b3

    def train(self, vector, X, y, seed, epochs, batch, lr):
        p = self.unpack(vector)
        vel = [np.zeros_like(q) for q in p]
        rng = np.random.default_rng(seed)
        for _ in range(epochs):
            order = rng.permutation(len(y))
            for i in range(0, len(y), batch):
                b = order[i:i + batch]
                Xb, yb = X[b].astype(np.float64), y[b]
                h1, mask, h2, z = self.forward(p, Xb, rng)
                prob = np.exp(z - z.max(1, keepdims=True))
                prob /= prob.sum(1, keepdims=True)
                dz = prob
                dz[np.arange(len(yb)), yb] -= 1
                dz /= len(yb)
                dh2 = (dz @ p[4]) * (h2 > 0)
                dh1 = (dh2 @ p[2]) * (h1 > 0) * mask
                grads = [dh1.T @ Xb, dh1.sum(0), dh2.T @ h1, dh2.sum(0), dz.T @ h2, dz.sum(0)]
                for q, v, g in zip(p, vel, grads):
                    v *= 0.9
                    v += g
                    q -= lr * v
        return np.concatenate([q.ravel() for q in p]).astype(np.float32)

    def accuracy(self, vector, X, y):
        *_, z = self.forward(self.unpack(vector), X.astype(np.float64))
        return float((z.argmax(1) == y).mean())


def start_server(binary, token, data_dir):
    env = dict(os.environ, FEDAGG_ADMIN_TOKEN=token, FEDAGG_LOG="warn")
    proc = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir],
                            stdout=subprocess.PIPE, env=env, text=True)
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        sys.exit(f"fedagg serve did not start: {line!r}")
    return proc, line[len("listening on "):]


def participant(client, X, y, backend, args, cohorts, lock, stop):
    """One participant: wait for a round it is picked for, train on the round's model, contribute
    its update (weighted by its sample count), repeat."""
    after = 0
    while not stop.is_set():
        info = client.next_round(after, wait=2)
        if info is None:
            continue
        after = info["round"]
        if info["status"] != "open" or info["member"] is None:
            continue
        g = client.model()
        seed = args.seed * 1_000_003 + info["round"] * 1009 + client.participant_id
        local = backend.train(g, X, y, seed, args.local_epochs, args.batch_size, args.lr)
        with lock:
            cohorts.setdefault(info["round"], []).append(client.participant_id)
        client.contribute(local - g, weight=len(y), timeout=600)


def run_service(args, backend, parts, X, y, Xte, yte, init):
    token = args.token or secrets.token_hex(16)
    server = None
    if not args.url:
        import tempfile
        server, url = start_server(args.fedagg, token, tempfile.mkdtemp(prefix="fedagg-example-"))
    else:
        url = args.url
    admin = fedagg.Admin(url, token)
    fed = admin.create_federation({
        "name": f"guide-fedavg-digits-{args.backend}", "vector_len": int(init.size),
        "min_clients": 3, "max_clients": args.per_round, "phase_timeout_secs": 120,
        "mode": {"kind": "secagg", "clip": 1.0, "levels": 65536,
                 "max_weight": int(max(len(p) for p in parts)), "dropout_rate": 0.1,
                 "corrupt_fraction": 0.05}})
    fid = fed["id"]
    admin.set_initial_model(fid, init)
    clients = [fedagg.Client.enroll(url, admin.enrollment_code(fid, label=f"site-{k}"))
               for k in range(len(parts))]
    by_pid = {c.participant_id: k for k, c in enumerate(clients)}
    cohorts, lock, stop = {}, threading.Lock(), threading.Event()
    threads = [threading.Thread(target=participant, daemon=True,
                                args=(c, X[parts[k]], y[parts[k]], backend, args, cohorts, lock, stop))
               for k, c in enumerate(clients)]
    for t in threads:
        t.start()
    accs, t0 = [], time.time()
    for r in range(1, args.rounds + 1):
        admin.open_round(fid)
        rec = admin.wait_round(fid, r, 600)["record"]
        with lock:
            if rec["participants"] != len(cohorts.get(r, [])):
                sys.exit(f"round {r}: {rec['participants']} aggregated, but "
                         f"{len(cohorts.get(r, []))} trained: a participant dropped out")
        acc = backend.accuracy(admin.model(fid), Xte, yte)
        admin.report_metrics(fid, r, accuracy=acc)
        accs.append(acc)
        if r % 10 == 0 or r == args.rounds:
            print(f"service    round {r:3d}: {rec['participants']} participants, "
                  f"test accuracy {acc:.4f} ({time.time() - t0:.0f} s)", flush=True)
    stop.set()
    wall = time.time() - t0
    if server:
        server.terminate()
        server.wait()
    picked = [sorted((by_pid[p], p) for p in cohorts[r]) for r in range(1, args.rounds + 1)]
    return accs, picked, wall


def run_in_process(args, backend, parts, X, y, Xte, yte, init, picked):
    """The guide's FedAvgServer loop on the same rounds: the weighted average of the picked
    participants' models, in floating point. `picked` lists each round's (index, participant
    id); the id seeds local training, as in the service run."""
    g, accs, t0 = init.astype(np.float64), [], time.time()
    for r, cohort in enumerate(picked, start=1):
        sizes = np.array([len(parts[k]) for k, _ in cohort], dtype=np.float64)
        models = []
        for k, pid in cohort:
            seed = args.seed * 1_000_003 + r * 1009 + pid
            models.append(backend.train(g.astype(np.float32), X[parts[k]], y[parts[k]], seed,
                                        args.local_epochs, args.batch_size, args.lr))
        g = sum(w * m.astype(np.float64) for w, m in zip(sizes / sizes.sum(), models))
        accs.append(backend.accuracy(g.astype(np.float32), Xte, yte))
        if r % 10 == 0 or r == len(picked):
            print(f"in-process round {r:3d}: test accuracy {accs[-1]:.4f}", flush=True)
    return accs, time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=["torch", "numpy"], default="torch")
    ap.add_argument("--fedagg", default=os.environ.get("FEDAGG_BIN", str(ROOT / "target/debug/fedagg")))
    ap.add_argument("--url", help="use this server instead of starting one (with --token)")
    ap.add_argument("--token", help="its admin token")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--per-round", type=int, default=5, help="participants per round (SecAgg needs 3 or more)")
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--local-epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tolerance", type=float, default=1.0, help="points")
    ap.add_argument("--out", default="fedavg-digits.csv")
    args = ap.parse_args()
    backend = TorchBackend() if args.backend == "torch" else NumpyBackend()
    X, y = load_digits()
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(y))
    test, train = order[:360], order[360:]
    Xtr, ytr, Xte, yte = X[train], y[train], X[test], y[test]
    parts = create_non_iid_partition(ytr, args.clients, 10, args.alpha, rng)
    init = backend.initial(args.seed)
    print(f"{args.clients} participants ({np.mean([len(p) for p in parts]):.1f} samples on "
          f"average), {args.per_round} a round, {args.rounds} rounds, SimpleNet ({init.size} "
          f"parameters, {args.backend})", flush=True)
    svc, picked, svc_wall = run_service(args, backend, parts, Xtr, ytr, Xte, yte, init)
    inp, inp_wall = run_in_process(args, backend, parts, Xtr, ytr, Xte, yte, init, picked)
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["round", "service_accuracy", "in_process_accuracy"])
        for r, (a, b) in enumerate(zip(svc, inp), start=1):
            w.writerow([r, f"{a:.4f}", f"{b:.4f}"])
    last_s, last_i = 100 * np.mean(svc[-5:]), 100 * np.mean(inp[-5:])
    print(f"service (SecAgg over HTTP): final {100 * svc[-1]:.2f} %, mean of the last five "
          f"{last_s:.2f} %, {svc_wall:.0f} s")
    print(f"in-process loop:            final {100 * inp[-1]:.2f} %, mean of the last five "
          f"{last_i:.2f} %, {inp_wall:.0f} s")
    gap = abs(last_s - last_i)
    print(f"difference {gap:.2f} points (tolerance {args.tolerance}); per-round figures in {args.out}")
    sys.exit(0 if gap <= args.tolerance else 1)


if __name__ == "__main__":
    main()
