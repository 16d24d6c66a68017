"""A hostile client at the socket level: raw DEALER frames, and memory files of every kind
for shared-memory references (tests only)."""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import zmq
from sfumato.bridge.shared_pixels import memory_file_name

PREFIX = b"sfumato/1"


class RawPeer:
    """A DEALER that sends whatever frames it is given and reads replies as JSON."""

    def __init__(self, endpoint: str, **options: int | bytes) -> None:
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


HOSTILE_SHAPE = {"width": 1024, "height": 512, "layout": "rgba8", "stride": 0}  # 2 MiB
HOSTILE_BYTES = 1024 * 512 * 4  # a huge page's size, so a hugetlb memfd can hold it


@contextmanager
def hostile_references(folder: Path) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """(what, reference) for every kind of file a shared-memory reference can name instead
    of a sealed sfumato memory file: all open until the block ends."""
    fifo = folder / "fifo"
    os.mkfifo(fifo)
    fds = [os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)]  # no writer: an open() would block
    unix = socket.socket(socket.AF_UNIX)
    fds.append(os.open(folder, os.O_RDONLY))
    fds.append(os.open("/dev/zero", os.O_RDONLY))
    huge, huge_token = memory_file(HOSTILE_BYTES, hugetlb=True)
    loose, loose_token = memory_file(HOSTILE_BYTES, sealed=False)
    fds += [huge, loose]
    token, size = "ab" * 16, HOSTILE_BYTES
    try:
        yield [
            ("a FIFO with no writer", reference(fds[0], token, size)),
            ("a socket", reference(unix.fileno(), token, size)),
            ("a directory", reference(fds[1], token, size)),
            ("/dev/zero", reference(fds[2], token, size)),
            ("a sealed hugetlb memfd", reference(huge, huge_token, size)),
            ("an unsealed memfd", reference(loose, loose_token, size)),
            ("another process's fd", {**reference(0, token, size), "pid": 1}),
        ]
    finally:
        unix.close()
        for fd in fds:
            os.close(fd)
