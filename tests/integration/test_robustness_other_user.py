"""Another local user (an unprivileged account made for the test) points the daemon, which
runs as root here, at files of their own: a FIFO with no writer (whose open would block the
loop for everyone), and a sealed memory file named exactly as sfumato names its own. Both
are refused at once, and the daemon serves on. Skipped unless run as root (useradd)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.support.daemon_process import DaemonProcess

SYSTEM_PYTHON = "/usr/bin/python3"  # the account cannot enter the project's venv

HOSTILE = r"""
import fcntl, json, os, sys, tempfile, zmq
endpoint, token = sys.argv[1], sys.argv[2]
folder = tempfile.mkdtemp()
os.mkfifo(folder + "/fifo")
fifo = os.open(folder + "/fifo", os.O_RDONLY | os.O_NONBLOCK)
size = 256 * 256 * 4
memfd = os.memfd_create(f"sfumato-{os.getpid()}-{token}", os.MFD_ALLOW_SEALING)
os.ftruncate(memfd, size)
fcntl.fcntl(memfd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW)
sock = zmq.Context().socket(zmq.DEALER)
sock.setsockopt(zmq.LINGER, 0)
sock.connect(endpoint)
for what, fd in (("fifo", fifo), ("memfd", memfd)):
    ref = {"pid": os.getpid(), "fd": fd, "token": token, "size": size, "pooled": True}
    raster = {"width": 256, "height": 256, "layout": "rgba8", "stride": 0, "shm": ref}
    head = {"type": "ping", "id": what, "rasters": [raster], "signed": False}
    sock.send_multipart([b"sfumato/1", json.dumps(head).encode(), b"{}", b""])
    if not sock.poll(10000):
        print(json.dumps({"id": what, "answer": None}))
        continue
    reply = sock.recv_multipart()
    print(json.dumps({"id": what, "header": json.loads(reply[1]), "body": json.loads(reply[2])}))
"""


def _other_user_can_run_zmq() -> bool:
    if os.geteuid() != 0 or shutil.which("useradd") is None or shutil.which("runuser") is None:
        return False
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import zmq"], capture_output=True)
    return probe.returncode == 0


pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not _other_user_can_run_zmq(), reason="needs root (to add a second "
                       f"user with useradd) and pyzmq in {SYSTEM_PYTHON}"),
]


@pytest.fixture
def other_user() -> Iterator[str]:
    name = f"sfz{secrets.token_hex(4)}"
    subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False)


def test_another_users_fifo_or_look_alike_memory_file_is_refused(
    hostile_daemon: DaemonProcess, other_user: str
) -> None:
    daemon = hostile_daemon
    out = subprocess.run(
        ["runuser", "-u", other_user, "--", SYSTEM_PYTHON, "-c", HOSTILE, daemon.endpoint,
         secrets.token_hex(16)],
        capture_output=True, text=True, timeout=60, cwd="/tmp",
    )
    assert out.returncode == 0, out.stderr
    answers = [json.loads(line) for line in out.stdout.splitlines()]
    assert [a["id"] for a in answers] == ["fifo", "memfd"]
    for answer in answers:
        assert answer.get("header"), f"no answer to the {answer['id']} reference: the loop hung"
        assert answer["header"]["type"] == "rejected", answer
        assert answer["body"]["code"] == "bad_frame", answer
    with daemon.client() as artist:
        artist.ping()
        assert artist.status().worker["ready"]
