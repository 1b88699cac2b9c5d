"""The exceptions of the fedagg package.

Every failure of a call into the SDK raises a subclass of :class:`Error`. A refusal by the
server is an :class:`ApiError`, which carries the HTTP status and the server's error kind (the
``error`` field of its JSON body, e.g. ``"conflict"``, ``"invalid"``, ``"unauthorized"``).
"""


class Error(Exception):
    """Base class of every fedagg error."""


class TransportError(Error):
    """The server could not be reached, after the SDK's retries with backoff."""


class TlsError(Error):
    """The server's certificate was refused, or the TLS settings are unusable. Never retried."""


class ApiError(Error):
    """The server refused the request.

    Attributes:
        status: the HTTP status (e.g. 409).
        kind: the server's error kind (e.g. ``"conflict"``).
        detail: the server's explanation.
    """

    def __init__(self, message: str, status: int, kind: str, detail: str):
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.detail = detail


class ProtocolError(Error):
    """A local step failed: a bad message from the server, an update the federation cannot
    take (wrong length, a weight the mode refuses), encryption."""


class UntrustedError(Error):
    """The server described the federation, a round's safety parameters or the public key
    differently from what was pinned at enrollment: nothing was sent. Never retried."""


class RoundError(Error):
    """The round ended without this member, or failed.

    Attributes:
        round: the round's number.
        reason: why.
    """

    def __init__(self, message: str, round: int, reason: str):
        super().__init__(message)
        self.round = round
        self.reason = reason


class Timeout(Error, TimeoutError):
    """Waiting took longer than allowed."""
