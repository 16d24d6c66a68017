"""A daemon on an ipc:// socket is reachable by its own user only: the socket file is its
user's alone (another user's connect is refused by the kernel), in a folder no one else can
write (so no one else can put a socket there first); an abstract @name, which every local
user can reach, is refused, and so is a client pointed at a socket others could have made."""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sfumato.bridge.client import Client, ClientError
from sfumato.bridge.protocol import ErrorCode

from tests.support.daemon_process import DaemonProcess, start_daemon

pytestmark = pytest.mark.integration

SYSTEM_PYTHON = "/usr/bin/python3"  # the other account cannot enter the project's venv
CONNECT = """
import socket, sys
with socket.socket(socket.AF_UNIX) as sock:
    try:
        sock.connect(sys.argv[1])
    except PermissionError:
        print("refused")
    else:
        print("connected")
"""


@pytest.fixture
def ipc_daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    folder = Path(tempfile.mkdtemp(prefix="sfumato-ipc-"))  # others may look, not write
    folder.chmod(0o755)
    process = start_daemon(tmp_path / "home", endpoint=f"ipc://{folder}/sfumato.sock")
    yield process
    process.stop()
    shutil.rmtree(folder, ignore_errors=True)


def test_only_the_daemons_user_can_connect(ipc_daemon: DaemonProcess) -> None:
    path = ipc_daemon.endpoint[len("ipc://"):]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with ipc_daemon.client() as artist:
        assert artist.status().worker["ready"]
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        pytest.skip("needs root to add a second user (useradd)")
    name = f"sfz{secrets.token_hex(4)}"
    subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", name], check=True)
    try:
        out = subprocess.run(["runuser", "-u", name, "--", SYSTEM_PYTHON, "-c", CONNECT, path],
                             capture_output=True, text=True, timeout=60, cwd="/")
    finally:
        subprocess.run(["userdel", name], check=False)
    assert out.stdout.strip() == "refused", out.stdout + out.stderr


def test_an_abstract_socket_is_refused_by_the_daemon(tmp_path: Path) -> None:
    env = {**os.environ, "SFUMATO_HOME": str(tmp_path / "home"),
           "SFUMATO_ENDPOINT": f"ipc://@sfumato-{secrets.token_hex(4)}"}
    out = subprocess.run([sys.executable, "-m", "sfumato.core", "serve"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "abstract socket" in out.stderr + out.stdout


def test_a_client_sends_nothing_to_a_socket_others_could_have_made() -> None:
    with pytest.raises(ClientError) as info:
        Client("ipc:///tmp/sfumato-anyone.sock")
    assert info.value.code == ErrorCode.AUTH_FAILED and "only you can write" in str(info.value)
