"""A hostile client at the socket level: raw DEALER frames, and memory files of every kind
for shared-memory references (tests only)."""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from typing import Any

import zmq
from sfumato.bridge.shared_pixels import memory_file_name

PREFIX = b"sfumato/1"


class RawPeer:
    """A DEALER that sends whatever frames it is given and reads replies as JSON."""

    def __init__(self, endpoint: str, **options: int) -> None:
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        for name, value in options.items():
            self.sock.setsockopt(getattr(zmq, name), value)
        self.sock.connect(endpoint)

    def send(self, header: dict[str, Any] | bytes, content: dict[str, Any] | bytes = b"{}",
             *pixels: bytes) -> None:
        self.sock.send_multipart([PREFIX, _frame(header), _frame(content), *pixels])

    def recv(self, timeout_s: float = 10.0) -> tuple[dict[str, Any], dict[str, Any],
                                                      list[bytes]]:
        assert self.sock.poll(int(timeout_s * 1000)), "the daemon did not answer"
        reply = self.sock.recv_multipart()
        return json.loads(reply[1]), json.loads(reply[2]), reply[3:]

    def ask(self, header: dict[str, Any] | bytes, content: dict[str, Any] | bytes = b"{}",
            *pixels: bytes) -> tuple[dict[str, Any], dict[str, Any], list[bytes]]:
        self.send(header, content, *pixels)
        return self.recv()

    def close(self) -> None:
        self.sock.close()


def header(kind: str, request_id: str, rasters: list | None = None,
           **extra: Any) -> dict[str, Any]:
    return {"type": kind, "id": request_id, "rasters": rasters or [], "signed": False, **extra}


def _frame(part: dict[str, Any] | bytes) -> bytes:
    return part if isinstance(part, bytes) else json.dumps(part).encode()


def reference(fd: int, token: str, size: int, pooled: bool = False) -> dict[str, Any]:
    return {"pid": os.getpid(), "fd": fd, "token": token, "size": size, "pooled": pooled}


def memory_file(size: int, *, sealed: bool = True, hugetlb: bool = False,
                data: bytes = b"") -> tuple[int, str]:
    """A memfd named as sfumato names its own (fd, token): the reader's checks must look at
    more than the name."""
    token = secrets.token_hex(16)
    flags = os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING | (os.MFD_HUGETLB if hugetlb else 0)
    fd = os.memfd_create(memory_file_name(os.getpid(), token), flags)
    os.ftruncate(fd, size)
    if data:
        os.pwrite(fd, data, 0)
    if sealed:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK
                    | fcntl.F_SEAL_GROW)
    return fd, token
