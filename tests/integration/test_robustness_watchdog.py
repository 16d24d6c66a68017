"""A hung worker is noticed: nothing from it, not even its heartbeat, for `worker_watchdog_s`
(stopped, wedged), or no event from its job for `job_stall_s` (a call that never returns).
It is killed and replaced; the job is retried once, then fails `worker_lost`, and other
clients' jobs go on. (That a retried job succeeds on the fresh worker is shown for a killed
worker in test_robustness_worker.)"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sfumato.bridge.protocol import ErrorCode, Failed, Result
from sfumato.bridge.raster import Layout, Raster
from sfumato.core.models.registry import ModelEntry, Registry

from tests.support.daemon_process import DaemonProcess, start_daemon
from tests.support.tiny_upscaler import build_tiny_upscaler

pytestmark = pytest.mark.integration

WATCHDOG_S = 2.0  # short, so the test is: the default is minutes
STALL_S = 12.0  # above a fresh worker's start and first model load at load average 10+;
# the default is half an hour
INJECT = Path(__file__).resolve().parents[1] / "inject"  # a 13 px wide image never returns
SLOW = {"tile": 32}


def _image(width: int, height: int) -> Raster:
    row = bytes((x * 7 + 30) % 256 for x in range(width * 4))
    return Raster(width, height, Layout.RGBA8, row * height)


def _await(what: str, check, within_s: float = 90.0):  # noqa: ANN001, ANN202 - test helper
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    home = tmp_path_factory.mktemp("watchdog") / "home"
    env = {"PYTHONPATH": os.pathsep.join([str(INJECT), os.environ.get("PYTHONPATH", "")])}
    process = start_daemon(home, f"worker_watchdog_s = {WATCHDOG_S}\njob_stall_s = {STALL_S}\n",
                           extra_env=env)
    model = build_tiny_upscaler(home.parent / "tiny-x2.safetensors")
    Registry(home).add(ModelEntry("tiny", "upscaler", str(model), "safetensors"))
    yield process
    for pid in _stopped:
        _resume(pid)
    process.stop()


_stopped: list[int] = []


@pytest.fixture(autouse=True)
def _bounded() -> Iterator[None]:
    """Without a watchdog the client would wait for ever (pings are answered): fail instead."""
    def hung(signum: int, frame: object) -> None:
        raise AssertionError("the job's client still waits after 150 s: the hang went unnoticed")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(150)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _stop(pid: int) -> None:
    os.kill(pid, signal.SIGSTOP)
    _stopped.append(pid)


def _resume(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass


def test_a_job_whose_worker_hangs_twice_fails_and_others_go_on(daemon: DaemonProcess) -> None:
    with daemon.client() as artist, daemon.client() as other, daemon.client() as watcher:
        job = artist.submit("upscale", SLOW, [_image(512, 512)], "tiny")

        def running_on(old: int | None) -> int | None:
            report = watcher.status()
            pid, running = report.worker.get("pid"), report.running
            if pid == old or running is None or running["job_id"] != job.job_id:
                return None
            return pid

        first = _await("the job runs", lambda: running_on(None))
        waiting = other.submit("upscale", {}, [_image(16, 16)], "tiny")
        _stop(first)
        second = _await("the job runs again on a fresh worker", lambda: running_on(first))
        _stop(second)
        terminal = [m for m, _ in artist.events(job)][-1]
        assert isinstance(terminal, Failed) and terminal.code == ErrorCode.WORKER_LOST.value
        assert "stopped answering" in terminal.message
        other_terminal, rasters = list(other.events(waiting))[-1]
        assert isinstance(other_terminal, Result) and rasters[0].width == 32
    assert daemon.process.poll() is None


def test_a_job_stuck_in_a_call_that_never_returns_fails_and_others_go_on(
    daemon: DaemonProcess,
) -> None:
    """The worker's heartbeat goes on (the process runs), but the job sends nothing."""
    with daemon.client() as artist, daemon.client() as other:
        restarts = other.status().worker["restarts"]
        job = artist.submit("upscale", {}, [_image(13, 8)], "tiny")  # see tests/inject
        waiting = other.submit("upscale", {}, [_image(16, 16)], "tiny")
        terminal = [m for m, _ in artist.events(job)][-1]
        assert isinstance(terminal, Failed) and terminal.code == ErrorCode.WORKER_LOST.value
        assert "no progress" in terminal.message and "2 times" in terminal.message
        other_terminal, rasters = list(other.events(waiting))[-1]
        assert isinstance(other_terminal, Result) and rasters[0].width == 32
        assert other.status().worker["restarts"] == restarts + 2
