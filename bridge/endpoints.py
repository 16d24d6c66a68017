"""Where the daemon is and how to prove who we are to it: the endpoint, the shared signing key
and CURVE key folders. Standard library only (the CURVE key files are read by
transport.py), so that the plug-ins can load all of this in a Python without pyzmq."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import SfumatoError
from .protocol import ErrorCode

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5655"
SERVER_PUBLIC_FILE = "server.key"  # in a client key folder: the daemon's public key
CLIENT_SECRET_FILE = "client.key_secret"  # in a client key folder: this client's key pair


def resolve_endpoint(endpoint: str | None = None) -> str:
    """The endpoint to use: the argument, else SFUMATO_ENDPOINT, else loopback TCP."""
    return endpoint or os.environ.get("SFUMATO_ENDPOINT") or DEFAULT_ENDPOINT


def key_from_env() -> bytes | None:
    """The shared signing key from SFUMATO_KEY, or None when frames go unsigned."""
    key = os.environ.get("SFUMATO_KEY")
    return key.encode() if key else None


class KeyFileError(SfumatoError):
    """A CURVE key folder that is missing a file or holds an unreadable one."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.AUTH_FAILED) -> None:
        super().__init__(code, message)


@dataclass(frozen=True)
class CurveKeys:
    """What a client needs to reach a daemon that requires CURVE (Z85-encoded keys)."""

    server_public: bytes
    client_public: bytes
    client_secret: bytes
