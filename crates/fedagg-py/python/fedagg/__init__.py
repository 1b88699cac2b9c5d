"""fedagg for Python: contribute model updates to a fedagg federation, hold its key, or run it.

The package is the Rust SDK (``fedagg-client``) compiled as an extension module: the same
protocol code as the Rust SDK runs here, so an update never leaves the process in the clear in
the SecAgg, Paillier and lattice modes. Calls are synchronous and release the GIL while they
wait on the network or compute crypto, so other Python threads keep running.

A participant::

    import fedagg
    client = fedagg.Client.enroll("https://fedagg.example:8470", bundle,
                                  credentials="member.json")   # once; later:
    client = fedagg.Client.connect("member.json")
    global_model = client.model()                 # numpy float32 vector
    update = train_locally(global_model) - global_model
    outcome = client.contribute(update, weight=len(local_data))

An update is a float32 array (anything exposing ``__array__`` or ``.numpy()``, such as a numpy
array or a CPU PyTorch tensor) or a mapping of named tensors such as ``model.state_dict()``,
flattened by :func:`flatten` in a documented order. Errors are subclasses of
:class:`fedagg.errors.Error`; a refusal by the server is an :class:`ApiError` carrying its
status and error kind.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from os import PathLike
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from . import _fedagg
from .errors import (
    ApiError,
    Error,
    ProtocolError,
    RoundError,
    Timeout,
    TlsError,
    TransportError,
    UntrustedError,
)

__version__: str = _fedagg.__version__

__all__ = [
    "Admin",
    "ApiError",
    "Client",
    "Error",
    "KeyHolder",
    "LocalControls",
    "ProtocolError",
    "RoundError",
    "Timeout",
    "TlsError",
    "TransportError",
    "UntrustedError",
    "flatten",
    "read_enrollment",
    "set_threads",
    "unflatten",
]

Path = Union[str, "PathLike[str]"]


def _array(x: Any) -> np.ndarray:
    """One tensor as a contiguous little-endian float32 array (a copy when it must convert)."""
    if hasattr(x, "detach"):  # a PyTorch tensor: leave the autograd graph, come to the CPU
        x = x.detach()
        if hasattr(x, "cpu"):
            x = x.cpu()
    if not hasattr(x, "__array__") and hasattr(x, "numpy"):
        x = x.numpy()
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32), dtype="<f4")


def flatten(update: Any) -> np.ndarray:
    """An update as the one float32 vector a federation aggregates.

    ``update`` is either one array-like, flattened in row-major (C) order, or a mapping of named
    tensors (for example ``model.state_dict()`` or ``dict(model.named_parameters())``), whose
    values are flattened each in row-major order and concatenated in the mapping's iteration
    order. For a PyTorch ``state_dict`` that is the order in which the model registers its
    parameters and buffers: the same on every participant running the same model code. Every
    value is included; pass only the parameters to leave buffers out.
    """
    if isinstance(update, Mapping):
        parts = [_array(v).ravel() for v in update.values()]
        return np.concatenate(parts) if parts else np.zeros(0, dtype="<f4")
    return _array(update).ravel()


def unflatten(vector: Any, like: Mapping[str, Any]) -> Dict[str, np.ndarray]:
    """The inverse of :func:`flatten` for a mapping: ``vector`` split into arrays shaped like
    ``like``'s values, in its order (for example to load the global model into a model with
    ``model.load_state_dict({k: torch.from_numpy(v) for k, v in unflatten(g, sd).items()})``).
    """
    vector = _array(vector).ravel()
    out: Dict[str, np.ndarray] = {}
    at = 0
    for name, value in like.items():
        shape = tuple(getattr(value, "shape", np.shape(value)))
        n = int(np.prod(shape, dtype=np.int64))
        if at + n > vector.size:
            raise ValueError(f"the vector has {vector.size} values, fewer than the mapping's")
        out[name] = vector[at : at + n].reshape(shape)
        at += n
    if at != vector.size:
        raise ValueError(f"the vector has {vector.size} values, the mapping {at}")
    return out


def set_threads(n: int) -> None:
    """Let this process use up to ``n`` threads for SecAgg's key agreements and masking,
    Paillier's and the lattice mode's encryption, and a key holder's Paillier decryption (1 until
    set). What is sent is the same whatever the number."""
    _fedagg.set_threads(int(n))


def read_enrollment(path: Path) -> Tuple[str, str]:
    """The server's URL and the enrollment bundle from an enrollment file (``fedagg admin codes
    create`` writes one per member). ``ValueError`` when it is not one."""
    return _fedagg.read_enrollment(str(path))


def _path(p: Optional[Path]) -> Optional[str]:
    return None if p is None else str(p)


class Client:
    """A participant of one federation. Create one with :meth:`enroll` (once) or
    :meth:`connect` (with the credentials saved at enrollment)."""

    def __init__(self, native: Any):
        self._native = native

    @classmethod
    def enroll(
        cls,
        url: str,
        code: str,
        credentials: Optional[Path] = None,
        ca_file: Optional[Path] = None,
    ) -> "Client":
        """Redeem an enrollment bundle (single use) and pin the federation it names.

        ``credentials``: a new file (mode 0600) to save the token, the pins and the identity
        key to, for :meth:`connect`. Without it they live only in this object.
        ``ca_file``: PEM certificate authorities to trust for an ``https://`` server.
        """
        return cls(_fedagg.Client.enroll(url, code, _path(credentials), _path(ca_file)))

    @classmethod
    def enroll_from_file(
        cls,
        enrollment: Path,
        credentials: Optional[Path] = None,
        ca_file: Optional[Path] = None,
    ) -> "Client":
        """:meth:`enroll` with an enrollment file from ``fedagg admin codes create``."""
        url, code = read_enrollment(enrollment)
        return cls.enroll(url, code, credentials, ca_file)

    @classmethod
    def connect(cls, credentials: Path, ca_file: Optional[Path] = None) -> "Client":
        """A client from the credentials file written at enrollment."""
        return cls(_fedagg.Client.connect(str(credentials), _path(ca_file)))

    def save_credentials(self, path: Path) -> None:
        """Write the credentials to a new file of mode 0600 (never replacing one)."""
        self._native.save_credentials(str(path))

    @property
    def participant_id(self) -> int:
        """This member's id in the federation."""
        return self._native.participant_id

    @property
    def federation_id(self) -> int:
        """The federation's id."""
        return self._native.federation_id

    def federation(self) -> Dict[str, Any]:
        """The federation (spec, model version, privacy spent), checked against the pins."""
        return json.loads(self._native.federation_json())

    def model(self) -> np.ndarray:
        """The current global model, a float32 vector."""
        return self.model_with_version()[1]

    def model_with_version(self) -> Tuple[int, np.ndarray]:
        """The current global model and its version."""
        version, data = self._native.model_bytes()
        return version, np.frombuffer(data, dtype="<f4").copy()

    def next_round(self, after: int = 0, wait: float = 30.0) -> Optional[Dict[str, Any]]:
        """The next round numbered above ``after``, waiting up to ``wait`` seconds (``None``
        when none opened). Its ``member`` is this client's place in the round's cohort, or
        ``None`` when the server did not pick it; ``status`` is ``"open"`` while it runs. A
        participant that trains only when picked waits here, trains on :meth:`model`, then
        calls :meth:`contribute`, which joins that round."""
        text = self._native.next_round_json(after, wait)
        return None if text is None else json.loads(text)

    def server_controls(self, version: int) -> np.ndarray:
        """SCAFFOLD: the server's control variate ``c`` stored with model ``version`` (read
        it with :meth:`model_with_version`'s model), a float32 vector."""
        return np.frombuffer(self._native.server_controls_bytes(version), dtype="<f4").copy()

    def contribute(
        self,
        update: Any,
        weight: int = 1,
        timeout: Optional[float] = None,
        control_delta: Any = None,
    ) -> Dict[str, Any]:
        """Contribute ``update`` (see :func:`flatten`) with ``weight`` (e.g. the local sample
        count; 1 in the DP modes, which refuse any other) to the next round this member is
        picked for, and wait for that round's end (``timeout`` seconds at most, an hour by
        default). Returns ``{"round", "status", "record"}``; the record says how many
        contributed and which model version the round produced.

        A SCAFFOLD federation takes, and only it, ``control_delta``: ``c_i+ - c_i``, flattened
        like the update; it is protected like the update. Keep ``c_i`` with
        :class:`LocalControls`, saving ``c_i+`` once the round's ``status`` is ``"completed"``.
        """
        vector = flatten(update)
        if int(weight) != weight or weight < 0:
            raise ValueError(f"weight must be a non-negative integer, not {weight!r}")
        delta = None if control_delta is None else flatten(control_delta).tobytes()
        return json.loads(
            self._native.contribute_bytes(vector.tobytes(), int(weight), timeout, delta)
        )


class LocalControls:
    """SCAFFOLD: this participant's control variate ``c_i``, kept in a file the caller
    chooses (mode 0600, replaced durably). It never leaves the participant."""

    def __init__(self, path: Path, federation_id: int, length: int):
        self._native = _fedagg.LocalControls(str(path), federation_id, length)

    def load(self) -> np.ndarray:
        """``c_i``: zeros when the file does not exist yet (a participant that has not taken
        part, or lost its file, starts from zero). A file of another federation or length is an
        error."""
        return np.frombuffer(self._native.load_bytes(), dtype="<f4").copy()

    def save(self, controls: Any) -> None:
        """Store ``c_i`` (flattened like an update)."""
        self._native.save_bytes(flatten(controls).tobytes())


class KeyHolder:
    """The key holder of a Paillier federation: publishes the public key and decrypts each
    round's sum (with a roster authority, only a sum it added up itself from signed
    contributions). ``fedagg key-holder`` runs one as a daemon."""

    def __init__(
        self,
        credentials: Path,
        key_file: Path,
        memory: Optional[Path] = None,
        unverified: bool = False,
        ca_file: Optional[Path] = None,
    ):
        """``credentials`` from enrollment with a key-holder code; ``key_file``: ``paillier.key``
        or a holder's share from ``fedagg keygen``; ``memory``: a file that keeps the digest of
        each round's decrypted sum across restarts; ``unverified``: decrypt sums that cannot be
        checked (a federation without a roster authority)."""
        self._native = _fedagg.KeyHolder(
            str(credentials), str(key_file), _path(memory), unverified, _path(ca_file)
        )

    @classmethod
    def enroll(
        cls,
        url: str,
        code: str,
        credentials: Path,
        key_file: Path,
        memory: Optional[Path] = None,
        unverified: bool = False,
        ca_file: Optional[Path] = None,
    ) -> "KeyHolder":
        """Enroll with a key-holder code, saving the credentials, and load the key."""
        Client.enroll(url, code, credentials, ca_file)
        return cls(credentials, key_file, memory, unverified, ca_file)

    def publish(self) -> bool:
        """Publish the public key unless the federation has it; ``True`` when published. Refuses
        (``UntrustedError``) when the federation has another key."""
        return self._native.publish()

    def decrypt_round(self, round: int, timeout: float = 3600.0) -> Dict[str, Any]:
        """Wait for ``round``'s decrypt phase, check and decrypt its sum, and wait for the
        round's end; ``{"round", "status", "record"}``."""
        return json.loads(self._native.decrypt_round(round, timeout))


class Admin:
    """The operator's side: federations, enrollment codes, rounds, models."""

    def __init__(self, url: str, token: str, ca_file: Optional[Path] = None):
        self._native = _fedagg.Admin(url, token, _path(ca_file))

    def create_federation(self, spec: Dict[str, Any]) -> Dict[str, Any]:
        """Create a federation from a spec with the API's fields (``name``, ``vector_len``,
        ``mode``, ``min_clients``, ``max_clients``, ``phase_timeout_secs``, ...)."""
        return json.loads(self._native.create_federation_json(json.dumps(spec)))

    def federation(self, id: int) -> Dict[str, Any]:
        """A federation."""
        return json.loads(self._native.federation_json(id))

    def federations(self) -> List[Dict[str, Any]]:
        """Every federation, ascending by id."""
        return json.loads(self._native.federations_json())

    def enrollment_code(
        self, id: int, role: str = "participant", label: Optional[str] = None
    ) -> str:
        """A single-use enrollment bundle for a ``"participant"`` or ``"key_holder"``."""
        return self._native.enrollment_code(id, role, label)

    def set_initial_model(self, id: int, model: Any) -> None:
        """Set the model the first round starts from (see :func:`flatten`); all zeros
        otherwise."""
        self._native.set_initial_model(id, flatten(model).tobytes())

    def set_server_optimizer(self, id: int, optimizer: Dict[str, Any]) -> None:
        """Set the server optimizer the next rounds apply, e.g. ``{"kind": "fedadam", "lr":
        0.01, "beta1": 0.9, "beta2": 0.99, "tau": 1e-3}`` (``fedavg`` with ``lr``, ``fedavgm``
        with ``lr`` and ``momentum``, ``fedadam`` and ``fedyogi``); refused while a round is
        open."""
        self._native.set_server_optimizer_json(id, json.dumps(optimizer))

    def open_round(self, id: int) -> Dict[str, Any]:
        """Open the federation's next round."""
        return json.loads(self._native.open_round_json(id))

    def round(self, id: int, round: int) -> Dict[str, Any]:
        """A round as the admin sees it."""
        return json.loads(self._native.round_json(id, round))

    def wait_round(self, id: int, round: int, timeout: float = 3600.0) -> Dict[str, Any]:
        """Wait until a round has ended."""
        return json.loads(self._native.wait_round_json(id, round, timeout))

    def rounds(self, id: int, limit: int = 100) -> List[Dict[str, Any]]:
        """The federation's latest rounds, newest first."""
        return json.loads(self._native.rounds_json(id, limit))

    def model(self, id: int, version: Optional[int] = None) -> np.ndarray:
        """A model version (the current one by default), a float32 vector."""
        if version is None:
            version = self.federation(id)["model_version"]
        return np.frombuffer(self._native.model_bytes(id, version), dtype="<f4").copy()

    def report_metrics(
        self,
        id: int,
        round: int,
        accuracy: Optional[float] = None,
        loss: Optional[float] = None,
    ) -> None:
        """Report what you measured on a round's model (shown on the dashboard)."""
        self._native.report_metrics(id, round, accuracy, loss)

    def rotate_token(self, id: int, participant: int) -> str:
        """Replace a member's token (the old one stops working); the new token."""
        return self._native.rotate_token(id, participant)
