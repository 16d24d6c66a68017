"""Another local user (an unprivileged account made for the test) against the daemon, which
runs as root here:
- without the artist's keys it cannot connect, run a job, read `status` or read the keys;
- binding the daemon's port first, it gets none of the artist's pixels (item 7);
- with a key it was given (a client allowed on purpose), pointing the daemon at files of its
  own (a FIFO with no writer, whose open would block the loop for everyone, and a sealed
  memory file named exactly as sfumato names its own) is refused at once, and the daemon
  serves on.
Skipped unless run as root (useradd)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sfumato.bridge.client import Client, NotTheDaemon
from sfumato.bridge.local_ipc import door_endpoint
from sfumato.bridge.transport import load_client_keys, local_keys

from tests.integration.test_robustness_auth import check_squatter_refused
from tests.support.daemon_process import DaemonProcess, start_daemon

SYSTEM_PYTHON = "/usr/bin/python3"  # the account cannot enter the project's venv

HOSTILE = r"""
import fcntl, json, os, sys, tempfile, zmq, zmq.auth
endpoint, token, keys = sys.argv[1], sys.argv[2], sys.argv[3]
folder = tempfile.mkdtemp()
os.mkfifo(folder + "/fifo")
fifo = os.open(folder + "/fifo", os.O_RDONLY | os.O_NONBLOCK)
size = 256 * 256 * 4
memfd = os.memfd_create(f"sfumato-{os.getpid()}-{token}", os.MFD_ALLOW_SEALING)
os.ftruncate(memfd, size)
fcntl.fcntl(memfd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW)
sock = zmq.Context().socket(zmq.DEALER)
sock.setsockopt(zmq.LINGER, 0)
server_public, _ = zmq.auth.load_certificate(keys + "/server.key")
public, secret = zmq.auth.load_certificate(keys + "/client.key_secret")
sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = server_public, public, secret
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


@pytest.fixture(autouse=True)
def _over_tcp(monkeypatch: pytest.MonkeyPatch) -> None:
    """The other user reaches the daemon over TCP (the door's folder is this user's alone),
    so the checks made from this process (e.g. "the daemon took the guest key") do too."""
    monkeypatch.setenv("SFUMATO_LOCAL_IPC", "off")


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
    keys = _given_keys(daemon, other_user)
    try:
        out = subprocess.run(
            ["runuser", "-u", other_user, "--", SYSTEM_PYTHON, "-c", HOSTILE, daemon.endpoint,
             secrets.token_hex(16), str(keys)],
            capture_output=True, text=True, timeout=60, cwd="/tmp",
        )
    finally:
        shutil.rmtree(keys.parent, ignore_errors=True)
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


def _given_keys(daemon: DaemonProcess, user: str) -> Path:
    """A client key folder allowed on the daemon (`sfumato keys client`), handed to `user`."""
    folder = Path(tempfile.mkdtemp(dir="/tmp")) / "keys"
    made = subprocess.run([sys.executable, "-m", "sfumato.core", "keys", "client",
                           f"guest-{user}", "--out", str(folder)], env=daemon.env(),
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    subprocess.run(["chown", "-R", user, str(folder.parent)], check=True)
    deadline = time.monotonic() + 20  # the daemon reads allowed keys within a second
    while time.monotonic() < deadline:
        with Client(daemon.endpoint, timeout_s=1.0, curve=load_client_keys(folder)) as guest:
            try:
                guest.ping()
                return folder
            except (NotTheDaemon, OSError):
                time.sleep(0.2)
    raise AssertionError("the daemon did not take the guest key")


NO_KEYS = r"""
import json, sys, zmq
endpoint, keys, server_public = sys.argv[1], sys.argv[2], sys.argv[3].encode()
out = {}
for name in ("local.key_secret", "server.key_secret", "server.key"):
    try:
        open(keys + "/" + name).read()
        out[name] = "read"
    except OSError as exc:
        out[name] = type(exc).__name__
status = json.dumps({"type": "status", "id": "s", "rasters": [], "signed": False}).encode()
for how in ("plain", "own-key"):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if how == "own-key":  # a key of its own, and the daemon's public key (say it learned it)
        public, secret = zmq.curve_keypair()
        sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = (
            server_public, public, secret)
    sock.connect(endpoint)
    for kind in ("status", "submit"):
        head = status if kind == "status" else json.dumps(
            {"type": "submit", "id": "j", "rasters": [], "signed": False}).encode()
        sock.send_multipart([b"sfumato/1", head, b'{"task": "upscale"}'])
    out[how] = "answered" if sock.poll(3000) else "nothing"
    sock.close()
print(json.dumps(out))
"""


def test_another_user_can_neither_connect_nor_read_status_nor_keys(other_user: str) -> None:
    parent = Path(tempfile.mkdtemp(dir="/tmp"))
    parent.chmod(0o755)  # a home others may enter, as ~/.local/share usually is: only keys/
    home = parent / "home"  # (0700) guards the keys
    home.mkdir(mode=0o755)
    daemon = start_daemon(home)
    try:
        server_public = local_keys(home).server_public.decode()
        out = subprocess.run(["runuser", "-u", other_user, "--", SYSTEM_PYTHON, "-c", NO_KEYS,
                              daemon.endpoint, str(home / "keys"), server_public],
                             capture_output=True, text=True, timeout=60, cwd="/tmp")
        assert out.returncode == 0, out.stderr
        seen = json.loads(out.stdout)
        assert seen["local.key_secret"] == "PermissionError", seen
        assert seen["server.key_secret"] == "PermissionError", seen
        assert seen["plain"] == "nothing" and seen["own-key"] == "nothing", seen
        with daemon.client() as artist:
            report = artist.status()
            assert report.worker["ready"] and report.queued == [] and report.running is None
    finally:
        daemon.stop()
        shutil.rmtree(parent, ignore_errors=True)


def test_another_user_squatting_the_port_gets_no_pixels(other_user: str,
                                                        tmp_path: Path) -> None:
    check_squatter_refused(tmp_path, "plain", ["runuser", "-u", other_user, "--"],
                           SYSTEM_PYTHON)


DOOR = r"""
import json, os, sys, zmq
door = sys.argv[1]
out = {}
try:
    os.stat(door[len("ipc://"):])
    out["stat"] = "seen"
except OSError as exc:
    out["stat"] = type(exc).__name__
sock = zmq.Context.instance().socket(zmq.DEALER)
sock.setsockopt(zmq.LINGER, 0)
sock.connect(door)
sock.send_multipart([b"sfumato/1", json.dumps({"type": "status", "id": "s", "rasters": [],
                                               "signed": False}).encode(), b"{}"],
                    flags=zmq.NOBLOCK)
out["door"] = "answered" if sock.poll(3000) else "nothing"
print(json.dumps(out))
"""


def test_another_user_cannot_come_in_through_this_users_door(other_user: str,
                                                              tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path / "home")
    try:
        door = door_endpoint(daemon.endpoint, local_keys(daemon.home).server_public)
        assert door is not None and Path(door[len("ipc://"):]).is_socket()
        out = subprocess.run(["runuser", "-u", other_user, "--", SYSTEM_PYTHON, "-c", DOOR,
                              door], capture_output=True, text=True, timeout=60, cwd="/tmp")
        if out.returncode != 0 and "Again" in out.stderr:
            seen = {"door": "nothing"}  # the connect itself was refused: nothing queued
        else:
            assert out.returncode == 0, out.stderr
            seen = json.loads(out.stdout)
            assert seen["stat"] == "PermissionError", seen
        assert seen["door"] == "nothing", seen

        # Even with the folder and the socket opened up by mistake, the daemon checks each
        # door connection's uid (SO_PEERCRED) and tells another user nothing.
        path = Path(door[len("ipc://"):])
        path.parent.chmod(0o711)
        path.chmod(0o666)
        try:
            out = subprocess.run(["runuser", "-u", other_user, "--", SYSTEM_PYTHON, "-c", DOOR,
                                  door], capture_output=True, text=True, timeout=60, cwd="/tmp")
        finally:
            path.parent.chmod(0o700)
            path.chmod(0o600)
        assert out.returncode == 0, out.stderr
        opened = json.loads(out.stdout)
        assert opened["stat"] == "seen" and opened["door"] == "nothing", opened
        with daemon.client() as artist:
            assert artist.status().worker["ready"]
    finally:
        daemon.stop()
