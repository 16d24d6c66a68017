"""Beyond this machine, only invited clients: a daemon bound to a non-loopback address refuses
to start without CURVE keys, then answers allowed client keys and nobody else. The optional
shared HMAC key (SFUMATO_KEY) keeps working on its own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq.auth
from sfumato.bridge.client import Client, ClientError, DaemonUnavailable
from sfumato.bridge.endpoints import CurveKeys
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.transport import load_client_keys

from tests.support.daemon_process import free_endpoint, start_daemon

pytestmark = pytest.mark.integration


def _sfumato(home: Path, *args: str, endpoint: str = "", cwd: Path | None = None):  # noqa: ANN202
    env = {**os.environ, "SFUMATO_HOME": str(home)}
    if endpoint:
        env["SFUMATO_ENDPOINT"] = endpoint
    return subprocess.run([sys.executable, "-m", "sfumato.core", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def _answers(endpoint: str, keys_folder: Path | None) -> bool:
    curve = load_client_keys(keys_folder) if keys_folder is not None else None
    with Client(endpoint, timeout_s=1.0, curve=curve) as client:
        try:
            client.ping()
            return True
        except DaemonUnavailable:
            return False


def _stranger(tmp_path: Path, server_public: Path) -> Path:
    """A well-formed client key folder whose key nobody allowed."""
    folder = tmp_path / "stranger"
    folder.mkdir()
    zmq.auth.create_certificates(folder, "client")
    (folder / "server.key").write_bytes(server_public.read_bytes())
    return folder


def stranger_public(folder: Path) -> bytes:
    return zmq.auth.load_certificate(folder / "client.key")[0]


def test_a_network_daemon_needs_keys_and_answers_only_allowed_clients(tmp_path: Path) -> None:
    assert zmq.has("curve"), "pyzmq was built without libsodium/CURVE"
    home = tmp_path / "home"
    port = free_endpoint().rsplit(":", 1)[1]
    bind, connect = f"tcp://0.0.0.0:{port}", f"tcp://127.0.0.1:{port}"

    refused = _sfumato(home, "serve", endpoint=bind)
    assert refused.returncode != 0
    assert "sfumato keys server" in refused.stderr and "sfumato keys client" in refused.stderr

    assert _sfumato(home, "keys", "server").returncode == 0
    made = _sfumato(home, "keys", "client", "laptop", "--out", str(tmp_path / "laptop"))
    assert made.returncode == 0, made.stderr
    assert "SFUMATO_CURVE" in made.stdout
    stranger = _stranger(tmp_path, home / "keys" / "server.key")
    listing = _sfumato(home, "keys", "list").stdout
    assert "allowed: laptop" in listing and "stranger" not in listing

    allowed = load_client_keys(tmp_path / "laptop")
    daemon = start_daemon(home, endpoint=connect, bind=bind,
                          client_defaults={"curve": allowed})
    try:
        with daemon.client() as client:  # the listed key works
            assert client.status().worker["ready"]
        assert not _answers(connect, stranger)  # an unlisted key gets no answer at all
        assert not _answers(connect, None)  # nor does a client without CURVE
        impostor = CurveKeys(stranger_public(stranger), allowed.client_public,
                             allowed.client_secret)  # expects another daemon's key
        with Client(connect, timeout_s=1.0, curve=impostor) as client, \
                pytest.raises(DaemonUnavailable):
            client.ping()

        # allow and revoke apply to the running daemon
        public = stranger / "client.key"
        assert _sfumato(home, "keys", "allow", "stranger", str(public)).returncode == 0
        _eventually(lambda: _answers(connect, stranger))
        assert _sfumato(home, "keys", "revoke", "laptop").returncode == 0
        _eventually(lambda: not _answers(connect, tmp_path / "laptop"))
    finally:
        daemon.stop()


def test_the_client_reads_its_keys_from_sfumato_curve(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert _sfumato(home, "keys", "server").returncode == 0
    assert _sfumato(home, "keys", "client", "desk", "--out", str(tmp_path / "desk")).returncode == 0
    bad = _sfumato(home, "keys", "client", "../escape", "--out", str(tmp_path / "x"))
    assert bad.returncode != 0 and "letters" in bad.stderr
    port = free_endpoint().rsplit(":", 1)[1]
    daemon = start_daemon(home, endpoint=f"tcp://127.0.0.1:{port}", bind=f"tcp://*:{port}",
                          client_defaults={"curve": load_client_keys(tmp_path / "desk")})
    try:
        status = _sfumato(home, "status", endpoint=daemon.endpoint)
        assert status.returncode != 0  # no SFUMATO_CURVE: the daemon does not answer
        env_status = subprocess.run(
            [sys.executable, "-m", "sfumato.core", "status"], capture_output=True, text=True,
            env={**daemon.env(), "SFUMATO_CURVE": str(tmp_path / "desk")}, timeout=60)
        assert env_status.returncode == 0, env_status.stdout + env_status.stderr
    finally:
        daemon.stop()


def test_loopback_needs_no_keys_and_the_shared_hmac_key_still_works(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path / "home", extra_env={"SFUMATO_KEY": "studio-secret"},
                          client_defaults={"key": b"studio-secret"})
    try:
        with daemon.client() as signed:
            signed.ping()
        with daemon.client(key=b"wrong", timeout_s=5.0) as wrong:
            with pytest.raises(ClientError) as info:
                wrong.ping()
        assert info.value.code == ErrorCode.AUTH_FAILED.value
        assert "SFUMATO_KEY" in info.value.message
        with daemon.client(key=None, timeout_s=5.0) as unsigned:  # no key at all
            with pytest.raises(ClientError) as unsigned_info:
                unsigned.ping()
        assert unsigned_info.value.code == ErrorCode.AUTH_FAILED.value
        with daemon.client() as signed:  # and the daemon keeps serving
            signed.ping()
    finally:
        daemon.stop()


def _eventually(check) -> None:  # noqa: ANN001 - waits for the daemon to reload its keys
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("the daemon did not pick up the key change")
