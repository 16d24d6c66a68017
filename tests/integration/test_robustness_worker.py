"""The worker process is where things go wrong: it gets killed, it runs out of memory. The
artist's job then ends typed, the daemon keeps serving, nobody else's job is lost, and the
worker's memory goes back to what it was before the job."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sfumato.bridge.client import Client, JobFailed
from sfumato.bridge.protocol import Cancelled, ErrorCode, Failed, Progress, Result
from sfumato.bridge.raster import Layout, Raster

from tests.support.daemon_process import DaemonProcess, start_daemon
from tests.support.tiny_upscaler import build_tiny_upscaler

pytestmark = pytest.mark.integration

SLOW = {"tile": 32}  # many small tiles: long enough to poke at, cancellable per tile
WORKER_MEMORY = 600 << 20  # the cap above the worker's start-up footprint
TOLERANCE = 16 << 20  # allocator slack (measured: +6 MB; +33 MB without the clean-up)


def _image(width: int, height: int) -> Raster:
    row = bytes((x * 7 + 30) % 256 for x in range(width * 4))
    return Raster(width, height, Layout.RGBA8, row * height)


def _await(what: str, check, within_s: float = 60.0):  # noqa: ANN001, ANN202 - test helper
    """Wait for a state of the daemon (never a speed assertion: the bound only ends a hang)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


@pytest.fixture
def tiny_daemon(daemon: DaemonProcess, tmp_path: Path) -> DaemonProcess:
    daemon.add_model("tiny", build_tiny_upscaler(tmp_path / "tiny-x2.safetensors"))
    return daemon


def test_a_worker_killed_twice_mid_job_loses_only_that_job(tiny_daemon: DaemonProcess) -> None:
    with tiny_daemon.client() as artist, tiny_daemon.client() as other, \
            tiny_daemon.client() as watcher:
        job = artist.submit("upscale", SLOW, [_image(512, 512)], "tiny")

        def running_on_a_new_worker(old_pid: int | None) -> int | None:
            report = watcher.status()
            pid = report.worker.get("pid")
            running = report.running
            if pid == old_pid or running is None or running["job_id"] != job.job_id:
                return None
            return pid if running["step"] >= 1 else None

        first = _await("the job runs", lambda: running_on_a_new_worker(None))
        waiting = other.submit("upscale", {}, [_image(16, 16)], "tiny")  # queued behind it
        os.kill(first, signal.SIGKILL)
        # retried once, first in line, on a fresh worker
        second = _await("the job runs again", lambda: running_on_a_new_worker(first))
        os.kill(second, signal.SIGKILL)

        terminal = [m for m, _ in artist.events(job)][-1]
        assert isinstance(terminal, Failed)
        assert terminal.code == ErrorCode.WORKER_LOST.value
        assert "worker.log" in terminal.message
        # the other client's queued job was not lost: it runs on the third worker
        other_terminal, rasters = list(other.events(waiting))[-1]
        assert isinstance(other_terminal, Result) and rasters[0].width == 32
        assert artist.run("upscale", {}, [_image(8, 8)], "tiny").rasters[0].width == 16
        report = watcher.status()
        assert report.worker["restarts"] == 2 and report.worker["pid"] not in (first, second)
    assert tiny_daemon.process.poll() is None


@pytest.fixture
def capped_daemon(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[DaemonProcess]:
    device = getattr(request, "param", "cpu")
    daemon = start_daemon(tmp_path / "home", f"worker_memory_bytes = {WORKER_MEMORY}\n"
                          f"device = \"{device}\"\n")
    daemon.add_model("tiny", build_tiny_upscaler(tmp_path / "tiny-x2.safetensors"))
    yield daemon
    daemon.stop()


def _settled_memory(client: Client, jobs: int) -> int:
    """The worker's memory between jobs, once it has cleaned up after its `jobs`-th."""
    report = _await(f"the worker settles after job {jobs}",
                    lambda: (r := client.status()).worker.get("jobs") == jobs
                    and r.worker.get("settled") and r)
    return int(report.worker["memory_bytes"])


def _memory_returns_to_baseline(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        pid = client.status().worker["pid"]
        for _ in range(2):  # warm: model loaded, thread pools up
            assert client.run("upscale", {}, [_image(64, 64)], "tiny").rasters[0].width == 128
        baseline = _settled_memory(client, 2)

        # cancelled mid-job, with its buffers allocated
        job = client.submit("upscale", SLOW, [_image(1024, 1024)], "tiny")
        events = client.events(job)
        next(m for m, _ in events if isinstance(m, Progress))
        client.cancel(job.job_id)
        assert isinstance([m for m, _ in events][-1], Cancelled)
        after_cancel = _settled_memory(client, 3)

        # a job that cannot fit under the worker's cap, however it is tiled
        seen: list = []
        with pytest.raises(JobFailed) as oom:
            client.run("upscale", {}, [_image(3000, 3000)], "tiny",
                       on_event=lambda m, r: seen.append(m))
        assert oom.value.code == ErrorCode.RESOURCE_EXHAUSTED.value
        assert "smaller" in oom.value.message  # says what to try
        assert any(isinstance(m, Progress) and "less memory" in m.stage for m in seen)
        after_oom = _settled_memory(client, 4)

        # a failed job (bad input caught inside the task, after the image arrived)
        with pytest.raises(JobFailed) as failed:
            client.run("upscale", {"region": [2000, 2000, 10, 10]}, [_image(1000, 1000)],
                       "tiny")
        assert failed.value.code == ErrorCode.EMPTY_SELECTION.value
        after_failure = _settled_memory(client, 5)

        assert client.run("upscale", {}, [_image(64, 64)], "tiny").rasters[0].width == 128
        report = client.status()
        assert report.worker["pid"] == pid, "the worker process was replaced, not recovered"
        assert report.worker["restarts"] == 0
    for label, value in (("cancelled", after_cancel), ("out of memory", after_oom),
                         ("failed", after_failure)):
        assert value <= baseline + TOLERANCE, (
            f"after a {label} job the worker holds {value / 1e6:.0f} MB, "
            f"{(value - baseline) / 1e6:.0f} MB over its {baseline / 1e6:.0f} MB baseline")


def test_a_finished_result_outlives_the_worker_that_made_it(tiny_daemon: DaemonProcess) -> None:
    # The result's pixels live in the worker's memory file (not the pipe): a worker killed
    # after the job must not take the kept result with it.
    layer = _image(400, 300)  # 1.9 MiB result: through a memory file
    with tiny_daemon.client() as artist:
        job = artist.submit("upscale", {}, [layer], "tiny")
        first, pixels = next((m, r) for m, r in artist.events(job) if isinstance(m, Result))
        expected = bytes(pixels[0].data)
        worker = artist.status().worker["pid"]
        os.kill(worker, signal.SIGKILL)
        _await("a fresh worker", lambda: artist.status().worker.get("pid") not in (None, worker)
               and artist.status().worker.get("restarts") == 1)
    with tiny_daemon.client(client_id=artist.client_id) as again:  # e.g. the plug-in restarted
        fetched = next(r for m, r in again.events(again.attach(job.job_id))
                       if isinstance(m, Result))
        assert bytes(fetched[0].data) == expected and fetched[0].width == 800
        assert again.run("upscale", {}, [layer], "tiny").rasters[0].width == 800
    del first, pixels


def test_out_of_memory_is_survived_and_memory_returns_to_baseline(
    capped_daemon: DaemonProcess,
) -> None:
    _memory_returns_to_baseline(capped_daemon)


@pytest.mark.gpu
@pytest.mark.parametrize("capped_daemon", ["cuda"], indirect=True)
def test_on_cuda_allocated_memory_returns_to_baseline(capped_daemon: DaemonProcess) -> None:
    """The same on a GPU: memory_bytes is then torch.cuda.memory_allocated in the worker."""
    _memory_returns_to_baseline(capped_daemon)
