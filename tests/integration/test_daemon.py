"""A real daemon process on a real loopback socket: it answers at once while a job runs,
cancels within a tile, and keeps serving after every kind of bad input or mishap."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sfumato.bridge.client import (
    Client,
    DaemonUnavailable,
    JobCancelledError,
    JobFailed,
    RequestRejected,
)
from sfumato.bridge.protocol import Cancelled, ErrorCode, Progress, Result
from sfumato.bridge.raster import Layout, Raster

from tests.support.daemon_process import DaemonProcess, start_daemon
from tests.support.tiny_upscaler import build_tiny_upscaler

pytestmark = pytest.mark.integration

SLOW = {"tile": 32}  # many small tiles: a job long enough to poke at, cancellable per tile


def _image(width: int, height: int) -> Raster:
    row = bytes((x * 7 + 30) % 256 for x in range(width * 4))
    return Raster(width, height, Layout.RGBA8, row * height)


def _add_model(daemon: DaemonProcess, name: str, path: Path) -> None:
    subprocess.run([sys.executable, "-m", "sfumato.core", "models", "add", name, str(path)],
                   env=daemon.env(), check=True, capture_output=True)


@pytest.fixture
def tiny_daemon(daemon: DaemonProcess, tmp_path: Path) -> DaemonProcess:
    _add_model(daemon, "tiny", build_tiny_upscaler(tmp_path / "tiny-x2.safetensors"))
    return daemon


def _first_progress(client: Client, job):
    events = client.events(job)
    for message, _ in events:
        if isinstance(message, Progress):
            return events
    raise AssertionError("no progress before the job ended")


def test_upscale_round_trip_and_progress(tiny_daemon: DaemonProcess) -> None:
    with tiny_daemon.client() as client:
        seen = []
        outcome = client.run("upscale", {"tile": 64}, [_image(100, 70)], "tiny",
                             on_event=lambda m, r: seen.append(m))
    out = outcome.rasters[0]
    assert (out.width, out.height, out.layout) == (200, 140, Layout.RGBA8)
    assert any(isinstance(m, Progress) for m in seen)
    assert outcome.result.info["model"] == "tiny"
    with tiny_daemon.client() as client:
        assert client.status().worker["loaded"] == ["upscaler:tiny"]  # what the worker holds now


def test_ping_and_status_answer_at_once_while_a_job_runs(tiny_daemon: DaemonProcess) -> None:
    with tiny_daemon.client() as worker_client, tiny_daemon.client() as other:
        job = worker_client.submit("upscale", SLOW, [_image(512, 512)], "tiny")
        events = _first_progress(worker_client, job)
        other.ping()  # answered while the worker is busy (speed: bench/daemon_latency.py)
        report = other.status()
        assert report.running is not None and report.running["job_id"] == job.job_id
        assert report.running["mine"] is False and report.running["step"] >= 1
        worker_client.cancel(job.job_id)
        assert any(isinstance(m, Cancelled) for m, _ in events)


def test_cancel_mid_job_then_the_next_job_runs(tiny_daemon: DaemonProcess) -> None:
    with tiny_daemon.client() as client:
        job = client.submit("upscale", SLOW, [_image(512, 512)], "tiny")
        events = _first_progress(client, job)
        ack = client.cancel(job.job_id)
        assert ack.state == "running"
        terminal = [m for m, _ in events][-1]
        assert isinstance(terminal, Cancelled)
        with pytest.raises(JobCancelledError):
            client.run("upscale", SLOW, [_image(256, 256)], "tiny",
                       should_cancel=lambda: True)
        assert client.run("upscale", {}, [_image(16, 16)], "tiny").rasters[0].width == 32


def test_bad_input_is_refused_typed_and_the_daemon_keeps_serving(
    tiny_daemon: DaemonProcess,
) -> None:
    cases = [
        (("upscale", {}, [_image(8, 8)], "no-such-model"), ErrorCode.UNKNOWN_MODEL, "models add"),
        (("upscale", {}, [Raster(0, 0, Layout.RGBA8, b"")], "tiny"), ErrorCode.EMPTY_IMAGE,
         "empty"),
        (("upscale", {}, [], "tiny"), ErrorCode.BAD_PARAMS, "image"),
        (("dream", {}, [_image(8, 8)], None), ErrorCode.UNKNOWN_TASK, "upscale"),
        (("inpaint", {}, [_image(8, 8), Raster(8, 8, Layout.GRAY8, bytes(64))], "tiny"),
         ErrorCode.WRONG_MODEL_KIND, "upscaler"),
        (("inpaint", {}, [_image(8, 8), _image(8, 8)], None), ErrorCode.UNSUPPORTED_LAYOUT,
         "gray8"),
    ]
    with tiny_daemon.client() as client:
        for args, code, hint in cases:
            with pytest.raises(RequestRejected) as info:
                client.run(*args)
            assert info.value.code == code.value
            assert hint in info.value.message
        # the task contract refuses a bad value at submit, before anything queues
        with pytest.raises(RequestRejected) as bad_scale:
            client.run("upscale", {"scale": -2}, [_image(8, 8)], "tiny")
        assert bad_scale.value.code == ErrorCode.BAD_PARAMS.value
        assert "scale must be a number from 0.01 to 16" in bad_scale.value.message
        assert client.run("upscale", {}, [_image(8, 8)], "tiny").rasters[0].width == 16


def test_image_over_the_configured_limit(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path / "home", "max_pixels = 10000\n")
    try:
        with daemon.client() as client:
            with pytest.raises(RequestRejected) as info:
                client.run("upscale", {}, [_image(101, 100)])
            assert info.value.code == ErrorCode.IMAGE_TOO_LARGE.value
            assert "max_pixels" in info.value.message
            client.ping()
    finally:
        daemon.stop()


def test_malformed_frames_get_typed_rejections(tiny_daemon: DaemonProcess) -> None:
    import zmq

    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 5000)
    for name, value in tiny_daemon.curve_options().items():
        sock.setsockopt(getattr(zmq, name), value)
    sock.connect(tiny_daemon.endpoint)
    try:
        for frames in ([b"garbage"], [b"sfumato/9", b"{}", b"{}"],
                       [b"sfumato/1", b'{"id":"x","type":"submit","rasters":[{"width":4}]}',
                        b"{}", b"abc"]):
            sock.send_multipart(frames)
            reply = sock.recv_multipart()
            header = json.loads(reply[1])
            content = json.loads(reply[2])
            assert header["type"] == "rejected"
            assert content["code"] in {c.value for c in ErrorCode}
    finally:
        sock.close()
    with tiny_daemon.client() as client:
        client.ping()


class _Payload:
    """Unpickling this would run code: create a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_posing_as_weights_never_runs(tiny_daemon: DaemonProcess, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"params": _Payload(marker)}))
    refused = subprocess.run([sys.executable, "-m", "sfumato.core", "models", "add", "evil",
                              str(evil)], env=tiny_daemon.env(), capture_output=True, text=True)
    assert refused.returncode != 0
    assert "safetensors" in refused.stderr
    # as if an older release had registered it: the daemon still refuses to unpickle it
    registry = tiny_daemon.home / "models" / "registry.json"
    data = json.loads(registry.read_text())
    data["models"].append({"name": "evil", "kind": "upscaler", "path": str(evil),
                           "format": "pth", "config": None, "source": "local"})
    registry.write_text(json.dumps(data))
    with tiny_daemon.client() as client:
        with pytest.raises(JobFailed) as info:
            client.run("upscale", {}, [_image(8, 8)], "evil")
        assert info.value.code == ErrorCode.UNSAFE_WEIGHTS.value
        assert "safetensors" in info.value.message
        assert client.run("upscale", {}, [_image(8, 8)], "tiny").rasters[0].width == 16
    assert not marker.exists()


def test_a_client_that_disconnects_mid_job_loses_nothing(tiny_daemon: DaemonProcess) -> None:
    gone = tiny_daemon.client(client_id="gimp-artist-1")
    job = gone.submit("upscale", {"tile": 48}, [_image(256, 256)], "tiny")
    _first_progress(gone, job)
    gone.close()
    with tiny_daemon.client(client_id="gimp-artist-1") as client:  # the plug-in, restarted
        assert client.run("upscale", {}, [_image(8, 8)], "tiny").rasters[0].width == 16
        attached = client.attach(job.job_id)
        terminal = [m for m, _ in client.events(attached)][-1]
        assert isinstance(terminal, Result)
        assert terminal.job_id == job.job_id


def test_a_worker_crash_is_survived(tiny_daemon: DaemonProcess) -> None:
    with tiny_daemon.client() as client:
        pid = client.status().worker["pid"]
        job = client.submit("upscale", SLOW, [_image(384, 384)], "tiny")
        events = _first_progress(client, job)
        os.kill(pid, signal.SIGKILL)
        terminal, rasters = list(events)[-1]
        assert isinstance(terminal, Result), terminal  # retried once on a fresh worker
        assert rasters[0].width == 768
        report = client.status()
        assert report.worker["restarts"] == 1 and report.worker["pid"] != pid


def test_a_client_outlives_a_daemon_restart(tmp_path: Path) -> None:
    first = start_daemon(tmp_path / "home")
    client = first.client(timeout_s=2.0)
    try:
        client.ping()
        first.stop()
        with pytest.raises(DaemonUnavailable) as gone:
            client.ping()
        assert "sfumato serve" in gone.value.message  # says what to do
        second = start_daemon(tmp_path / "home", endpoint=first.endpoint)
        try:
            client.ping()  # the same client reconnects on its own
            assert client.status().worker["daemon_pid"] == second.process.pid
        finally:
            second.stop()
    finally:
        client.close()
