"""A client id belongs to the key that first used it. A program holding another allowed key
(a second studio machine) that names someone else's client id can neither take over that
program's live connection, nor fetch, cancel or be told of its jobs, nor receive its
results after it went away; the program itself comes back and gets them: real daemon
process, real CURVE clients."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import zmq
from sfumato.bridge import codec
from sfumato.bridge.client import (
    Client,
    DaemonUnavailable,
    JobFailed,
    NotTheDaemon,
    RequestRejected,
)
from sfumato.bridge.endpoints import CurveKeys
from sfumato.bridge.protocol import ErrorCode, Ping, Result
from sfumato.bridge.raster import Layout, Raster
from sfumato.bridge.transport import load_client_keys

from tests.support.daemon_process import start_daemon
from tests.support.tiny_upscaler import build_tiny_upscaler

pytestmark = pytest.mark.integration


def _second_machine_keys(home: Path, out: Path) -> None:
    """`sfumato keys client`: a key pair the daemon allows, as an admin makes for a laptop."""
    made = subprocess.run([sys.executable, "-m", "sfumato.core", "keys", "client", "laptop",
                           "--out", str(out)], env={**os.environ, "SFUMATO_HOME": str(home)},
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr


def _eventually_answers(make_client: Callable[[], Client]) -> None:
    """A fresh client each try: one whose handshake failed stays failed."""
    deadline = time.monotonic() + 15
    while True:
        with make_client() as client:
            try:
                client.ping(timeout_s=1.0)
                return
            except (DaemonUnavailable, NotTheDaemon):
                if time.monotonic() > deadline:
                    raise
        time.sleep(0.2)


def _raw_ping(endpoint: str, keys: CurveKeys, routing_id: bytes) -> list[bytes] | None:
    """A ping from a bare DEALER naming `routing_id`, as a hostile program would; the reply's
    frames, or None when nothing came back in 3 s."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.ROUTING_ID, routing_id)
    sock.curve_serverkey = keys.server_public
    sock.curve_publickey, sock.curve_secretkey = keys.client_public, keys.client_secret
    sock.connect(endpoint)
    try:
        sock.send_multipart([bytes(f) for f in codec.encode(Ping(id="hostile"))])
        return sock.recv_multipart() if sock.poll(3000) else None
    finally:
        sock.close()


def test_another_key_cannot_use_a_client_id_it_does_not_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    daemon = start_daemon(home)
    try:
        daemon.add_model("tiny", build_tiny_upscaler(tmp_path / "tiny-x2.safetensors"))
        _second_machine_keys(home, tmp_path / "laptop")
        laptop = load_client_keys(tmp_path / "laptop")
        # The laptop's programs come over CURVE TCP, as from another machine; the artist's
        # own program uses this machine's door (this user's key, on ipc).
        monkeypatch.setenv("SFUMATO_LOCAL_IPC", "off")
        _eventually_answers(lambda: Client(daemon.endpoint, curve=laptop))  # key taken up
        victim_id = "c-artist-program-0001"
        layer = Raster(8, 8, Layout.RGBA8, bytes(range(256)))

        monkeypatch.delenv("SFUMATO_LOCAL_IPC")
        artist = daemon.client(client_id=victim_id, timeout_s=30.0)
        monkeypatch.setenv("SFUMATO_LOCAL_IPC", "off")
        with artist:
            job = artist.submit("upscale", {}, [layer], "tiny")
            result = [message for message, _ in artist.events(job)][-1]
            assert isinstance(result, Result)
            connection = artist._transport._require().getsockopt(zmq.ROUTING_ID)

            # Its exact connection id, named by another key while it is connected: that
            # connection is turned away, and the artist's keeps working.
            assert _raw_ping(daemon.endpoint, laptop, connection) is None
            assert artist.status().worker["ready"]

            # Its client id (so the same family), from another key: refused, nothing done.
            with Client(daemon.endpoint, timeout_s=10.0, curve=laptop,
                        client_id=victim_id) as other:
                with pytest.raises(RequestRejected) as cancel:
                    other.cancel(job.job_id)
                assert cancel.value.code == ErrorCode.FORBIDDEN.value
                with pytest.raises(JobFailed) as fetch:
                    list(other.events(other.attach(job.job_id)))
                assert fetch.value.code == ErrorCode.FORBIDDEN.value

        # The artist's program is gone; its result is kept. Its exact connection id, named by
        # another key now: the message is refused and nothing at all comes back (the id is
        # no longer on the connection that proved it).
        time.sleep(1.0)  # the daemon has seen the artist's connection close
        assert _raw_ping(daemon.endpoint, laptop, connection) is None
        assert "another key used the id" in (home / "logs" / "daemon.log").read_text()

        # The artist's program comes back with its id and its key: its result is still there.
        monkeypatch.delenv("SFUMATO_LOCAL_IPC")
        _eventually_answers(lambda: daemon.client(client_id=victim_id))
        with daemon.client(client_id=victim_id, timeout_s=30.0) as back:
            again = [message for message, _ in back.events(back.attach(job.job_id))][-1]
            assert isinstance(again, Result) and again.job_id == job.job_id
    finally:
        daemon.stop()
