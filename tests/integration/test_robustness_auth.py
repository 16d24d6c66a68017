"""Authenticated both ways, by default. Every TCP endpoint is CURVE: the daemon makes its keys
and this user's on its first start, this user's programs find them with no set-up, a program
without them gets nothing (not even `status`), and a program squatting the port gets no pixels
while the artist is told what is wrong. Beyond this machine, only invited clients: a daemon
bound to a non-loopback address refuses to start without allowed client keys, then answers
them and nobody else. The optional shared HMAC key (SFUMATO_KEY) keeps working on its own."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zmq.auth
from PIL import Image
from sfumato.bridge import actions
from sfumato.bridge.client import Client, ClientError, DaemonUnavailable, NotTheDaemon
from sfumato.bridge.endpoints import CurveKeys
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.raster import Layout, Raster
from sfumato.bridge.transport import load_client_keys, local_keys

from tests.support.daemon_process import free_endpoint, start_daemon
from tests.support.fake_host import FakeHost
from tests.support.tiny_upscaler import build_tiny_upscaler

SQUATTER = Path(__file__).resolve().parents[1] / "support" / "squatter.py"

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _over_tcp(monkeypatch: pytest.MonkeyPatch) -> None:
    """These are about CURVE on TCP, the way another machine or another user reaches the
    daemon; this user's programs on this machine use the door (test_local_door.py)."""
    monkeypatch.setenv("SFUMATO_LOCAL_IPC", "off")


def _sfumato(home: Path, *args: str, endpoint: str = "", cwd: Path | None = None):  # noqa: ANN202
    env = {**os.environ, "SFUMATO_HOME": str(home)}
    if endpoint:
        env["SFUMATO_ENDPOINT"] = endpoint
    return subprocess.run([sys.executable, "-m", "sfumato.core", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def _answers(endpoint: str, keys_folder: Path | None) -> bool:
    """Whether the daemon answers a client with the keys in `keys_folder` (None: plain TCP,
    no CURVE at all)."""
    curve = load_client_keys(keys_folder) if keys_folder is not None else None
    saved = os.environ.get("SFUMATO_CURVE")
    if curve is None:
        os.environ["SFUMATO_CURVE"] = "off"
    try:
        with Client(endpoint, timeout_s=1.0, curve=curve) as client:
            try:
                client.ping()
                return True
            except (DaemonUnavailable, NotTheDaemon):
                return False
    finally:
        if saved is None:
            os.environ.pop("SFUMATO_CURVE", None)
        else:
            os.environ["SFUMATO_CURVE"] = saved


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
        with Client(connect, timeout_s=5.0, curve=load_client_keys(stranger)) as client, \
                pytest.raises(NotTheDaemon) as unknown:
            client.ping()
        assert "does not know this client's key" in unknown.value.message
        assert "sfumato keys client" in unknown.value.message
        impostor = CurveKeys(stranger_public(stranger), allowed.client_public,
                             allowed.client_secret)  # expects another daemon's key
        with Client(connect, timeout_s=5.0, curve=impostor) as client, \
                pytest.raises(NotTheDaemon) as other:
            client.ping()
        assert "could not prove it is your sfumato daemon" in other.value.message

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
        elsewhere = _sfumato(tmp_path / "elsewhere", "status", endpoint=daemon.endpoint)
        assert elsewhere.returncode != 0  # another machine: no keys of this daemon's at all
        env_status = subprocess.run(
            [sys.executable, "-m", "sfumato.core", "status"], capture_output=True, text=True,
            env={**os.environ, "SFUMATO_HOME": str(tmp_path / "elsewhere"),
                 "SFUMATO_ENDPOINT": daemon.endpoint, "SFUMATO_CURVE": str(tmp_path / "desk")},
            timeout=60)
        assert env_status.returncode == 0, env_status.stdout + env_status.stderr
        # on the daemon's machine, its user needs no folder: the keys in SFUMATO_HOME do
        assert _sfumato(home, "status", endpoint=daemon.endpoint).returncode == 0
    finally:
        daemon.stop()


def test_the_shared_hmac_key_still_works_on_top(tmp_path: Path) -> None:
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


def test_the_first_start_makes_private_keys_and_this_users_programs_just_work(
    tmp_path: Path
) -> None:
    home = tmp_path / "home"
    endpoint = free_endpoint()
    env = {**os.environ, "SFUMATO_HOME": str(home), "SFUMATO_ENDPOINT": endpoint}
    serve = subprocess.Popen([sys.executable, "-m", "sfumato.core", "serve"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
    try:
        assert "listening" in (serve.stdout.readline() if serve.stdout else "")
        folder = home / "keys"
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        for name in ("server.key", "server.key_secret", "local.key", "local.key_secret"):
            assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
        status = _sfumato(home, "status", endpoint=endpoint)  # no set-up step
        assert status.returncode == 0, status.stderr
        with Client(endpoint, timeout_s=10.0, curve=local_keys(home)) as plugin:
            assert plugin.status().worker["daemon_pid"] == serve.pid
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(timeout=30)


def test_a_program_without_this_users_keys_gets_nothing(tmp_path: Path) -> None:
    """Another identity (a fresh key pair that knows the daemon's public key) and a client
    without CURVE: neither can run a job or read `status` (job ids, models, pid)."""
    daemon = start_daemon(tmp_path / "home")
    try:
        own = local_keys(daemon.home)
        stranger = CurveKeys(own.server_public, *zmq.curve_keypair())
        with Client(daemon.endpoint, timeout_s=5.0, curve=stranger) as client:
            with pytest.raises(NotTheDaemon) as refused:
                client.status()
            with pytest.raises(NotTheDaemon):
                client.submit("upscale", {}, [Raster(8, 8, Layout.RGBA8, bytes(256))], "x")
        assert refused.value.code is ErrorCode.AUTH_FAILED
        assert not _answers(daemon.endpoint, None)
        raw = zmq.Context.instance().socket(zmq.DEALER)  # plain ZeroMQ, no keys at all
        raw.setsockopt(zmq.LINGER, 0)
        raw.connect(daemon.endpoint)
        raw.send_multipart([b"sfumato/1", json.dumps({"type": "status", "id": "s", "rasters": [],
                                                      "signed": False}).encode(), b"{}"])
        assert not raw.poll(2000), "the daemon answered a client without keys"
        raw.close()
        with daemon.client() as artist:
            assert artist.status().worker["ready"]
    finally:
        daemon.stop()


def _squat(kind: str, port: str, needle: bytes, user: list[str] | None = None,
           python: str = sys.executable) -> subprocess.Popen:
    squatter = subprocess.Popen([*(user or []), python, str(SQUATTER), kind, port, "60",
                                 needle.hex()], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True, cwd="/tmp")
    assert squatter.stdout is not None and squatter.stdout.readline().strip() == "ready"
    return squatter


def squatter_report(squatter: subprocess.Popen) -> dict:
    out, _ = squatter.communicate("", timeout=30)
    return json.loads(out.splitlines()[-1])


def check_squatter_refused(tmp_path: Path, kind: str, user: list[str] | None = None,
                           python: str = sys.executable) -> None:
    """The artist's `sfumato upscale` and a plug-in's use case against a program that bound
    the port first: both refuse with what to do, and the program gets none of the pixels."""
    home = tmp_path / "home"
    pixels = np.random.default_rng(15).integers(0, 256, (40, 48, 4), np.uint8)
    Image.fromarray(pixels, "RGBA").save(tmp_path / "layer.png")
    needle = pixels[20].tobytes()  # one row of the layer: 192 bytes no protocol would hold
    endpoint = free_endpoint()
    port = endpoint.rsplit(":", 1)[1]
    squatter = _squat(kind, port, needle, user, python)
    try:
        run = _sfumato(home, "upscale", str(tmp_path / "layer.png"), "-o",
                       str(tmp_path / "out.png"), endpoint=endpoint)
        host = FakeHost((48, 40), image=Raster(48, 40, Layout.RGBA8, pixels.tobytes()))
        with Client(endpoint, timeout_s=30.0, curve=local_keys(home)) as plugin:
            outcome = actions.upscale_layer(host, plugin, {}, None, selection_only=False)
    finally:
        report = squatter_report(squatter)
    assert run.returncode != 0
    assert f"another program holds port {port}" in run.stderr, run.stderr
    assert "SFUMATO_ENDPOINT" in run.stderr and "starting a sfumato daemon" not in run.stderr
    assert not (tmp_path / "out.png").exists()
    assert not outcome.ok and f"another program holds port {port}" in outcome.message
    assert host.layers == []
    assert not report["pixels_seen"], report
    if kind != "raw":  # a ZeroMQ squatter gets no message at all, not even a ping
        assert report["received"] == 0, report


@pytest.mark.parametrize("kind", ["raw", "plain", "curve"])
def test_a_port_squatter_gets_no_pixels_and_the_artist_is_told(tmp_path: Path,
                                                               kind: str) -> None:
    check_squatter_refused(tmp_path, kind)


def test_five_client_ids_of_one_key_cannot_fill_the_queue_for_another(tmp_path: Path) -> None:
    """One program, this user's key, five made-up client ids, each up to its own cap: the
    daemon counts them as one identity, so another key's job is still taken, and runs next."""
    home = tmp_path / "home"
    daemon = start_daemon(home)
    try:
        daemon.add_model("tiny", build_tiny_upscaler(tmp_path / "tiny-x2.safetensors"))
        assert _sfumato(home, "keys", "client", "artist2", "--out",
                        str(tmp_path / "artist2")).returncode == 0
        _eventually(lambda: _answers(daemon.endpoint, tmp_path / "artist2"))
        small = Raster(8, 8, Layout.RGBA8, bytes(256))
        fakes = [daemon.client(client_id=f"fake-{n}") for n in range(5)]
        try:
            blocker = fakes[0].submit("upscale", {"tile": 32}, [Raster(1024, 1024, Layout.RGBA8,
                                      bytes(1024 * 1024 * 4))], "tiny")
            accepted, full = 0, 0
            for fake in fakes:
                for _ in range(8):
                    try:
                        fake.submit("upscale", {}, [small], "tiny")
                        accepted += 1
                    except ClientError as exc:
                        assert exc.code is ErrorCode.QUEUE_FULL, exc
                        full += 1
            assert full > 0 and accepted <= 16  # max_queue_per_identity; max_queue is 32
            artist = Client(daemon.endpoint, timeout_s=30.0,
                            curve=load_client_keys(tmp_path / "artist2"))
            with artist:
                click = artist.submit("upscale", {}, [small], "tiny")
                queued = [job["job_id"] for job in artist.status().queued]
                assert queued.index(click.job_id) == 1  # after one job of the other key
                artist.cancel(click.job_id)
            fakes[0].cancel(blocker.job_id)
        finally:
            for fake in fakes:
                fake.goodbye()
                fake.close()
    finally:
        daemon.stop()


def _eventually(check) -> None:  # noqa: ANN001 - waits for the daemon to reload its keys
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("the daemon did not pick up the key change")
