"""SIGTERM stops the daemon gracefully: no new work is admitted, waiting clients are told,
the running job gets a bounded time to finish before it is cancelled (its client told why),
and no worker process outlives the daemon."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest
from sfumato.bridge.client import RequestRejected
from sfumato.bridge.protocol import ErrorCode, Failed, Progress, Result
from sfumato.bridge.raster import Layout, Raster

from tests.support.daemon_process import DaemonProcess, start_daemon
from tests.support.tiny_upscaler import build_tiny_upscaler

pytestmark = pytest.mark.integration


def _image(width: int, height: int) -> Raster:
    row = bytes((x * 7 + 30) % 256 for x in range(width * 4))
    return Raster(width, height, Layout.RGBA8, row * height)


def _daemon(tmp_path: Path, stop_timeout_s: float) -> DaemonProcess:
    daemon = start_daemon(tmp_path / "home", f"stop_timeout_s = {stop_timeout_s}\n")
    daemon.add_model("tiny", build_tiny_upscaler(tmp_path / "tiny-x2.safetensors"))
    return daemon


def _worker_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_sigterm_cancels_a_long_job_in_time_and_tells_everyone(tmp_path: Path) -> None:
    daemon = _daemon(tmp_path, stop_timeout_s=1.0)
    try:
        with daemon.client() as artist, daemon.client() as waiting, daemon.client() as late:
            worker_pid = artist.status().worker["pid"]
            job = artist.submit("upscale", {"tile": 32}, [_image(2048, 2048)], "tiny")
            events = artist.events(job)
            next(m for m, _ in events if isinstance(m, Progress))
            queued = waiting.submit("upscale", {}, [_image(8, 8)], "tiny")

            os.kill(daemon.process.pid, signal.SIGTERM)  # the daemon alone, as systemd does
            queued_end = [m for m, _ in waiting.events(queued)][-1]
            assert isinstance(queued_end, Failed)
            assert queued_end.code == ErrorCode.DAEMON_STOPPING.value
            with pytest.raises(RequestRejected) as refused:  # no new work while stopping
                late.submit("upscale", {}, [_image(8, 8)], "tiny")
            assert refused.value.code == ErrorCode.DAEMON_STOPPING.value

            running_end = [m for m, _ in events][-1]  # cancelled after stop_timeout_s
            assert isinstance(running_end, Failed)
            assert running_end.code == ErrorCode.DAEMON_STOPPING.value
            assert "did not finish in time" in running_end.message
        assert daemon.process.wait(timeout=60) == 0
        assert _worker_gone(worker_pid), "the worker outlived the daemon"
        assert "sfumato daemon stopped" in (daemon.home / "daemon.out").read_text()
    finally:
        daemon.stop()


def test_sigterm_lets_a_short_job_finish(tmp_path: Path) -> None:
    daemon = _daemon(tmp_path, stop_timeout_s=60.0)
    try:
        with daemon.client() as artist:
            worker_pid = artist.status().worker["pid"]
            job = artist.submit("upscale", {"tile": 128}, [_image(384, 384)], "tiny")
            events = artist.events(job)
            first = next(m for m, _ in events if isinstance(m, Progress))
            assert first.step < first.total  # still running when the stop comes
            os.kill(daemon.process.pid, signal.SIGTERM)
            terminal, rasters = list(events)[-1]
            assert isinstance(terminal, Result) and rasters[0].width == 768
        assert daemon.process.wait(timeout=60) == 0
        assert _worker_gone(worker_pid)
    finally:
        daemon.stop()


def test_a_killed_daemon_takes_its_worker_with_it(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        worker_pid = client.status().worker["pid"]
    os.kill(daemon.process.pid, signal.SIGKILL)  # no clean-up code runs at all
    daemon.process.wait(timeout=30)
    try:
        psutil.wait_procs([psutil.Process(worker_pid)], timeout=30)
    except psutil.NoSuchProcess:
        pass
    assert _worker_gone(worker_pid), "an orphan worker is left holding the GPU"
