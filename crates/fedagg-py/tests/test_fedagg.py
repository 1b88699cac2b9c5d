"""The Python package against a real `fedagg serve` on loopback: a SecAgg round with dropouts, a
Paillier round with a key holder, a SCAFFOLD round, a central DP round, a SecAgg round with
distributed DP, and the error cases."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fedagg

STEP = 2.0 / 65536  # one quantization step at clip 1 and 2^16 levels


def spec(mode, m, min_clients=3, max_clients=10, timeout=10):
    return {
        "name": "python",
        "vector_len": m,
        "mode": mode,
        "min_clients": min_clients,
        "max_clients": max_clients,
        "phase_timeout_secs": timeout,
    }


def secagg(dropout_rate=0.1):
    return {"kind": "secagg", "clip": 1.0, "levels": 65536, "max_weight": 100,
            "dropout_rate": dropout_rate, "corrupt_fraction": 0.05}


def updates(n, m, seed):
    rng = np.random.default_rng(seed)
    return [(rng.uniform(-1, 1, m).astype(np.float32), int(rng.integers(1, 101))) for _ in range(n)]


def weighted_mean(ups):
    total = sum(w for _, w in ups)
    return sum(u.astype(np.float64) * w for u, w in ups) / total


def enroll(server, admin, fid, n, tmp_path=None):
    clients = []
    for i in range(n):
        creds = None if tmp_path is None else tmp_path / f"member-{i}.json"
        clients.append(fedagg.Client.enroll(server, admin.enrollment_code(fid), credentials=creds))
    return clients


def contribute_all(clients, ups):
    with ThreadPoolExecutor(len(clients)) as pool:
        futures = [pool.submit(c.contribute, u, w, 120) for c, (u, w) in zip(clients, ups)]
        return [f.result() for f in futures]


def test_a_secagg_round_with_dropouts_gives_the_survivors_weighted_mean(server, admin, tmp_path):
    m = 300
    fed = admin.create_federation(spec(secagg(0.4), m, timeout=3))
    clients = enroll(server, admin, fed["id"], 6, tmp_path)
    # A member reconnects from its saved credentials, as after a restart.
    clients[0] = fedagg.Client.connect(tmp_path / "member-0.json")
    assert clients[0].federation_id == fed["id"]
    assert np.array_equal(clients[0].model(), np.zeros(m, np.float32))
    admin.open_round(fed["id"])
    ups = updates(6, m, 1)
    # Two of the six picked never show up: the round goes on without them at the deadline.
    outcomes = contribute_all(clients[:4], ups[:4])
    assert all(o["status"] == "completed" for o in outcomes), outcomes
    record = outcomes[0]["record"]
    assert (record["participants"], record["dropouts"]) == (4, 2)
    version, model = clients[1].model_with_version()
    assert version == 1 and model.dtype == np.float32
    assert np.max(np.abs(model - weighted_mean(ups[:4]))) <= STEP
    assert admin.rounds(fed["id"])[0]["info"]["record"]["participants"] == 4


def test_a_scaffold_round_moves_the_published_control_variate(server, admin, tmp_path):
    m = 50
    s = spec(secagg(0.1), m)
    s["scaffold"] = True
    fed = admin.create_federation(s)
    clients = enroll(server, admin, fed["id"], 4)
    assert np.array_equal(clients[0].server_controls(0), np.zeros(m, np.float32))
    with pytest.raises(fedagg.ProtocolError):
        clients[0].contribute(np.zeros(m, np.float32), 1, 10)
    admin.open_round(fed["id"])
    ups = updates(4, m, 7)
    deltas = [u for u, _ in updates(4, m, 8)]
    files = [fedagg.LocalControls(tmp_path / f"c_{i}", fed["id"], m) for i in range(4)]
    fedagg.set_threads(2)  # masking on two threads: the same masked vectors
    assert np.array_equal(files[0].load(), np.zeros(m, np.float32))
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(c.contribute, u, w, 120, d)
                   for c, (u, w), d in zip(clients, ups, deltas)]
        outcomes = [f.result() for f in futures]
    fedagg.set_threads(1)
    assert all(o["status"] == "completed" for o in outcomes), outcomes
    for f, d in zip(files, deltas):
        f.save(d)
    assert np.array_equal(files[1].load(), deltas[1])
    # c moves by the control deltas' plain sum over the 4 participants; the model by the
    # updates' weighted mean.
    version, model = clients[0].model_with_version()
    assert np.max(np.abs(model - weighted_mean(ups))) <= STEP
    c = clients[2].server_controls(version)
    assert np.max(np.abs(c - sum(d.astype(np.float64) for d in deltas) / 4)) <= STEP


def test_a_paillier_round_with_a_key_holder_gives_the_weighted_mean(server, admin, keygen, tmp_path):
    m = 200
    mode = {"kind": "paillier", "clip": 1.0, "levels": 65536, "max_weight": 100}
    fed = admin.create_federation(spec(mode, m, timeout=60))
    fid = fed["id"]
    kh = fedagg.KeyHolder.enroll(
        server, admin.enrollment_code(fid, "key_holder"), tmp_path / "kh.json", keygen,
        memory=tmp_path / "kh.decrypted", unverified=True)
    assert kh.publish() is True
    assert kh.publish() is False  # already its key
    clients = enroll(server, admin, fid, 4)
    round_ = admin.open_round(fid)["round"]
    decrypted = {}
    t = threading.Thread(target=lambda: decrypted.update(kh.decrypt_round(round_, 120)))
    t.start()
    ups = updates(4, m, 2)
    outcomes = contribute_all(clients, ups)
    t.join()
    assert decrypted["status"] == "completed" and decrypted["record"]["participants"] == 4
    assert all(o["status"] == "completed" for o in outcomes)
    assert np.max(np.abs(admin.model(fid) - weighted_mean(ups))) <= STEP
    # The key holder remembered the round durably.
    assert list(json.loads((tmp_path / "kh.decrypted").read_text())["decrypted"]) == [str(round_)]


def test_a_dp_round_adds_the_configured_noise_and_spends_epsilon(server, admin):
    m, n, sigma = 4000, 10, 0.8
    mode = {"kind": "dp", "clip": 1.0, "noise_multiplier": sigma, "sampling_rate": 1.0,
            "epsilon_budget": 50.0, "delta": 1e-5}
    fed = admin.create_federation(spec(mode, m, min_clients=n, max_clients=64, timeout=60))
    clients = enroll(server, admin, fed["id"], n)
    admin.open_round(fed["id"])
    ups = [(u * 0.01, 1) for u, _ in updates(n, m, 3)]  # norms below the clip
    with pytest.raises(fedagg.ProtocolError, match="weight 1, not 3"):
        clients[0].contribute(ups[0][0], weight=3)
    outcomes = contribute_all(clients, ups)
    eps = outcomes[0]["record"]["epsilon_spent"]
    assert 0 < eps < 50
    resid = admin.model(fed["id"]) - np.mean([u for u, _ in ups], axis=0)
    want = sigma * 1.0 / n
    # 4000 samples: the sample sd is within 5 % of the truth with overwhelming probability.
    assert abs(resid.std(ddof=1) / want - 1) < 0.05, resid.std(ddof=1)
    assert admin.federation(fed["id"])["privacy"]["epsilon"] == pytest.approx(eps)


def test_a_secagg_round_with_distributed_dp_releases_a_noisy_mean(server, admin):
    m, n = 64, 4
    mode = {"kind": "secagg_dp", "clip": 1.0, "noise_multiplier": 0.5, "sampling_rate": 1.0,
            "epsilon_budget": 100.0, "delta": 1e-5, "bits": 16, "dropout_rate": 0.1,
            "corrupt_fraction": 0.05}
    fed = admin.create_federation(spec(mode, m, min_clients=3, max_clients=10, timeout=30))
    clients = enroll(server, admin, fed["id"], n)
    admin.open_round(fed["id"])
    ups = [(u * 0.05, 1) for u, _ in updates(n, m, 4)]  # norms below the clip
    outcomes = contribute_all(clients, ups)
    record = outcomes[0]["record"]
    assert outcomes[0]["status"] == "completed" and record["participants"] == n
    assert 0 < record["epsilon_spent"] < 100
    # Each member added its share of discrete Gaussian noise: the mean moved, but not far.
    resid = admin.model(fed["id"]) - np.mean([u for u, _ in ups], axis=0)
    assert 0 < resid.std() < 1.0, resid.std()


def test_errors_carry_the_servers_kind(server, admin, tmp_path):
    fed = admin.create_federation(spec(secagg(), 10))
    fid = fed["id"]
    with pytest.raises(fedagg.ApiError) as e:
        fedagg.Admin(server, "not-the-token").federation(fid)
    assert (e.value.status, e.value.kind) == (401, "unauthorized")
    with pytest.raises(fedagg.ApiError) as e:
        admin.federation(999999)
    assert (e.value.status, e.value.kind) == (404, "not_found")
    code = admin.enrollment_code(fid)
    client = fedagg.Client.enroll(server, code, credentials=tmp_path / "c.json")
    with pytest.raises(fedagg.ApiError) as e:
        fedagg.Client.enroll(server, code)  # single use
    assert e.value.status == 401, e.value
    # A bundle whose pin does not match the federation: refused before anything is sent.
    other = admin.create_federation(spec(secagg(), 10))
    bad = admin.enrollment_code(other["id"]).split(".")[0] + "." + code.split(".", 1)[1]
    with pytest.raises(fedagg.UntrustedError):
        fedagg.Client.enroll(server, bad)
    with pytest.raises(fedagg.ProtocolError, match="11 values"):
        client.contribute(np.zeros(11, np.float32), 1)
    with pytest.raises(fedagg.ApiError) as e:
        admin.open_round(fid)  # fewer members than min_clients
    assert (e.value.status, e.value.kind) == (409, "conflict")
    with pytest.raises(fedagg.ApiError) as e:
        admin.report_metrics(fid, 1, accuracy=1.5)
    assert e.value.status in (404, 422)
    with pytest.raises(ValueError):
        fedagg.Client.enroll_from_file(tmp_path / "c.json")  # credentials, not an enrollment
    with pytest.raises(fedagg.Error):
        client.save_credentials(tmp_path / "c.json")  # never replaced
    # Credentials that could not be saved are refused before the code is spent.
    spare = admin.enrollment_code(fid)
    with pytest.raises(ValueError, match="already exists"):
        fedagg.Client.enroll(server, spare, credentials=tmp_path / "c.json")
    fedagg.Client.enroll(server, spare, credentials=tmp_path / "c2.json")
    token = admin.rotate_token(fid, client.participant_id)
    assert token and token not in (tmp_path / "c.json").read_text()
    with pytest.raises(fedagg.ApiError) as e:
        client.federation()
    assert e.value.status == 401


class FakeTensor:
    """Like a PyTorch tensor without torch: `.detach()`, `.cpu()`, `.numpy()`, `.shape`."""

    def __init__(self, a):
        self.a = np.asarray(a)
        self.shape = self.a.shape

    def detach(self):
        return self

    def cpu(self):
        return self

    def numpy(self):
        return self.a


def test_flatten_takes_arrays_tensors_and_named_tensors_in_their_order():
    named = {"w": FakeTensor([[1, 2], [3, 4]]), "b": np.array([5.0, 6.0])}
    v = fedagg.flatten(named)
    assert v.dtype == np.float32 and v.tolist() == [1, 2, 3, 4, 5, 6]
    back = fedagg.unflatten(v, named)
    assert list(back) == ["w", "b"] and back["w"].shape == (2, 2)
    assert fedagg.flatten(np.arange(3, dtype=np.float64)).tolist() == [0, 1, 2]
    with pytest.raises(ValueError):
        fedagg.unflatten(v[:5], named)
