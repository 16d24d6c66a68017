"""The same-machine door (bridge/local_ipc.py): a daemon on loopback TCP also listens on an ipc
socket in /tmp/sfumato-UID, and this user's programs use it with no set-up and no encryption.
Real daemon processes and real clients; the door's folder is moved under the test's own
temporary folder (SFUMATO_DOOR_BASE) so other daemons on this machine are not disturbed."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sfumato.bridge.client import DaemonUnavailable
from sfumato.bridge.raster import Layout, Raster

from tests.support.daemon_process import free_endpoint, start_daemon

pytestmark = pytest.mark.integration


@pytest.fixture
def door_base(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # short: a socket path may not pass 107 bytes
    base = Path(tempfile.mkdtemp(prefix="door", dir="/tmp"))
    monkeypatch.setenv("SFUMATO_DOOR_BASE", str(base))  # this process and the daemons
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _transport_endpoint(client: object) -> str:
    return client._transport.endpoint  # type: ignore[attr-defined]


def test_this_users_programs_come_in_through_the_door(tmp_path: Path, door_base: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    daemon = start_daemon(tmp_path / "home")
    try:
        folder = door_base / f"sfumato-{os.getuid()}"
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        sockets = list(folder.iterdir())
        assert len(sockets) == 1 and stat.S_IMODE(sockets[0].stat().st_mode) == 0o600
        layer = Raster(33, 17, Layout.RGBA8, bytes(range(256)) * 8 + bytes(33 * 17 * 4 - 2048))
        monkeypatch.setenv("SFUMATO_SHARED_MEMORY", "0")  # pixels in the frames themselves
        with daemon.client() as client:
            assert _transport_endpoint(client) == f"ipc://{sockets[0]}"
            assert bytes(client.ping([layer])[0].data) == bytes(layer.data)
            assert client.status().worker["ready"]
        monkeypatch.setenv("SFUMATO_LOCAL_IPC", "off")  # as from another machine: CURVE TCP
        with daemon.client() as client:
            assert _transport_endpoint(client) == daemon.endpoint
            assert bytes(client.ping([layer])[0].data) == bytes(layer.data)
    finally:
        daemon.stop()
    assert not list(folder.iterdir())  # the daemon took its socket away


def test_a_door_folder_someone_else_could_enter_is_not_used(tmp_path: Path,
                                                             door_base: Path) -> None:
    folder = door_base / f"sfumato-{os.getuid()}"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)  # made first by someone, open to all: no door in it
    daemon = start_daemon(tmp_path / "home")
    try:
        assert not list(folder.iterdir())
        with daemon.client() as client:
            assert _transport_endpoint(client) == daemon.endpoint  # CURVE TCP, still works
            assert client.status().worker["ready"]
        assert "not a folder only this user can enter" in (
            tmp_path / "home" / "logs" / "daemon.log").read_text()
    finally:
        daemon.stop()


def test_a_dead_daemons_door_is_replaced_and_never_hangs_a_client(tmp_path: Path,
                                                                   door_base: Path) -> None:
    endpoint = free_endpoint()
    home = tmp_path / "home"
    daemon = start_daemon(home, endpoint=endpoint)
    os.killpg(daemon.process.pid, signal.SIGKILL)  # no clean exit: its socket file stays
    daemon.process.wait(30)
    folder = door_base / f"sfumato-{os.getuid()}"
    assert len(list(folder.iterdir())) == 1
    with daemon.client(timeout_s=2.0) as client, pytest.raises(DaemonUnavailable):
        client.ping()
    again = start_daemon(home, endpoint=endpoint)
    try:
        with again.client() as client:
            assert _transport_endpoint(client).startswith("ipc://")
            assert client.status().worker["ready"]
    finally:
        again.stop()
