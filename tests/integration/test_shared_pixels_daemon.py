"""Pixels through shared memory with a real daemon process: the same pixels as raw frames,
frames whenever shared memory cannot be used, and nothing left behind when either side is
killed outright."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sfumato.bridge import shared_pixels
from sfumato.bridge.client import Client, JobFailed
from sfumato.bridge.protocol import ErrorCode, Result
from sfumato.bridge.raster import Layout, Raster

from tests.support.daemon_process import DaemonProcess, start_daemon
from tests.support.tiny_upscaler import build_tiny_upscaler

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not shared_pixels.available(), reason="needs Linux memfd and /proc"),
]


def _layer(width: int, height: int, layout: Layout = Layout.RGBA8) -> Raster:
    row = bytes((x * 13 + 7) % 256 for x in range(width * layout.bytes_per_pixel))
    return Raster(width, height, layout, row * height)


def _memory_files(pid: int | str, table: str) -> list[str]:
    """Names of sfumato memory files that process `pid` has open ("fd") or mapped ("maps")."""
    if table == "fd":
        folder = Path(f"/proc/{pid}/fd")
        found = []
        for entry in folder.iterdir():
            try:
                found.append(os.readlink(entry))
            except OSError:
                continue
        return [name for name in found if "sfumato-" in name]
    return [line for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
            if "memfd:sfumato-" in line]


def _shm_entries() -> set[str]:
    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


def _add_tiny(daemon: DaemonProcess, tmp_path: Path) -> None:
    model = build_tiny_upscaler(tmp_path / "tiny-x2.safetensors")
    subprocess.run([sys.executable, "-m", "sfumato.core", "models", "add", "tiny", str(model)],
                   env=daemon.env(), check=True, capture_output=True)


def test_layers_round_trip_bit_identical_through_shared_memory(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        for layer in (_layer(640, 360), _layer(640, 360, Layout.RGBA16)):
            echoed = client.ping([layer])
            assert client.shares_memory
            assert bytes(echoed[0].data) == bytes(layer.data)
            assert echoed[0].layout is layer.layout


def test_a_job_gives_the_same_pixels_through_shared_memory_and_frames(
    daemon: DaemonProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _add_tiny(daemon, tmp_path)
    layer = _layer(200, 150, Layout.RGBA16)
    with daemon.client() as client:
        shared = client.run("upscale", {}, [layer], model="tiny").rasters[0]
        assert client.shares_memory
    monkeypatch.setenv("SFUMATO_SHARED_MEMORY", "0")
    with daemon.client() as client:
        framed = client.run("upscale", {}, [layer], model="tiny").rasters[0]
        assert not client.shares_memory
        assert client.status().worker["loads"] == 1  # the model stayed loaded between jobs
    assert (shared.width, shared.height) == (400, 300)
    assert bytes(shared.data) == bytes(framed.data)


def test_a_daemon_without_shared_memory_gets_frames(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path / "home", "shared_memory = false\n")
    try:
        with daemon.client() as client:
            layer = _layer(640, 360)
            assert bytes(client.ping([layer])[0].data) == bytes(layer.data)
            assert not client.shares_memory  # the probe failed, frames from then on
            assert bytes(client.ping([layer])[0].data) == bytes(layer.data)
    finally:
        daemon.stop()


def test_job_pixels_go_to_and_from_the_worker_in_memory_files_reused_job_after_job(
    tmp_path: Path
) -> None:
    # the worker stays "busy" between these jobs, however slow the machine: no idle release
    daemon = start_daemon(tmp_path / "home", "idle_release_s = 60\n")
    try:
        _add_tiny(daemon, tmp_path)
        layer = _layer(512, 384)  # 768 KiB in, 3 MiB out: both over the pipe's threshold
        with daemon.client() as client:
            first = bytes(client.run("upscale", {}, [layer], model="tiny").rasters[0].data)
            worker_pid = client.status().worker["pid"]
            seen: set[str] = set()
            for _ in range(4):
                result = client.run("upscale", {}, [layer], model="tiny").rasters[0]
                assert bytes(result.data) == first
                seen.update(name for name in _memory_files(worker_pid, "fd")
                            if f"sfumato-{worker_pid}-" in name)
                del result
                gc.collect()
                client.ping()  # tells the daemon this client is done with the result
            # the results came in the worker's own memory files: the same few, job after job
            assert 1 <= len(seen) <= 2, seen
            # and the layer reached the worker in the daemon's memory files
            daemon_pid = daemon.process.pid
            assert [m for m in _memory_files(worker_pid, "maps")
                    if f"sfumato-{daemon_pid}-" in m]
    finally:
        daemon.stop()


def test_an_idle_daemon_worker_and_client_let_their_pixel_files_go(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    _add_tiny(daemon, tmp_path)
    with daemon.client() as client:
        result = client.run("upscale", {}, [_layer(512, 384)], model="tiny").rasters[0]
        report = client.status()
        worker_pid = report.worker["pid"]
        del result
        gc.collect()
        deadline = time.monotonic() + 30
        while not ((report := client.status()).worker.get("settled")
                   and report.worker.get("jobs") == 1) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert report.worker.get("settled")
        daemon_pid = daemon.process.pid

        def pixel_files_left() -> list[str]:
            return ([n for n in _memory_files(worker_pid, "fd") if f"sfumato-{worker_pid}-" in n]
                    + _memory_files(worker_pid, "maps")
                    + [m for m in _memory_files(daemon_pid, "maps")
                       if f"sfumato-{worker_pid}-" in m]
                    # the reply files: closed by the daemon, forgotten by this client
                    + [n for n in _memory_files(daemon_pid, "fd") if f"sfumato-{daemon_pid}-" in n]
                    + [m for m in _memory_files("self", "maps") if f"sfumato-{daemon_pid}-" in m])

        # the link's files are normally gone by the time the worker settles; a free reply
        # file waits FREE_KEEP_S for reuse before it is closed and this client told
        deadline = time.monotonic() + shared_pixels.FREE_KEEP_S + 30
        while pixel_files_left() and time.monotonic() < deadline:
            client.ping()
            time.sleep(0.1)
        assert not pixel_files_left()


def test_a_result_read_through_shared_memory_is_let_go_one_sent_as_frames_is_kept(
    daemon: DaemonProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _add_tiny(daemon, tmp_path)
    layer = _layer(256, 192)

    def fetch_again(client: Client, job_id: str) -> bytes:
        for message, rasters in client.events(client.attach(job_id)):
            if isinstance(message, Result):
                return bytes(rasters[0].data)
        raise AssertionError("no result")

    with daemon.client() as client:
        outcome = client.run("upscale", {}, [layer], model="tiny")
        job_id, pixels = outcome.result.job_id, bytes(outcome.rasters[0].data)
        assert client.shares_memory
        assert fetch_again(client, job_id) == pixels  # still in use here: kept
        del outcome
        gc.collect()
        client.ping()  # carries the receipt
        with pytest.raises(JobFailed) as gone:
            fetch_again(client, job_id)
        assert gone.value.code == ErrorCode.NOT_FOUND.value

    monkeypatch.setenv("SFUMATO_SHARED_MEMORY", "0")
    with daemon.client() as client:
        outcome = client.run("upscale", {}, [layer], model="tiny")
        job_id = outcome.result.job_id
        del outcome
        gc.collect()
        client.ping()
        assert fetch_again(client, job_id) == pixels  # no receipt for frames: still kept


CLIENT = """
import os, sys, time
from sfumato.bridge.client import Client
from sfumato.bridge.raster import Layout, Raster
client = Client(sys.argv[1], timeout_s=30)
layer = Raster(512, 512, Layout.RGBA8, bytes(range(256)) * 4096)
job = client.submit("upscale", {"tile": 32}, [layer], model="tiny")
print(os.getpid(), client.shares_memory, job.job_id, flush=True)
time.sleep(120)
"""


def test_a_killed_client_leaves_nothing_behind(daemon: DaemonProcess, tmp_path: Path) -> None:
    _add_tiny(daemon, tmp_path)
    before = _shm_entries()
    child = subprocess.Popen([sys.executable, "-c", CLIENT, daemon.endpoint],
                             stdout=subprocess.PIPE, text=True, env=daemon.env())
    pid, shared, _job = child.stdout.readline().split()
    assert shared == "True"
    os.kill(child.pid, signal.SIGKILL)  # mid-job: the daemon holds the pixels it was sent
    child.wait(timeout=10)
    child.stdout.close()
    daemon_pid = daemon.process.pid
    # the job still runs on the dead client's pixels: the daemon's mapping keeps them alive
    assert [m for m in _memory_files(daemon_pid, "maps") if f"sfumato-{pid}-" in m]
    with daemon.client() as client:
        assert bytes(client.ping([_layer(256, 256)])[0].data) == bytes(_layer(256, 256).data)
        deadline = time.monotonic() + 120
        while client.status().running is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.status().running is None
    # the daemon lets the dead client's files go once the result is stored (polled: on a
    # loaded machine that is not within a fixed half second)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and \
            [m for m in _memory_files(daemon_pid, "maps") if f"sfumato-{pid}-" in m]:
        time.sleep(0.2)
    assert not [m for m in _memory_files(daemon_pid, "maps") if f"sfumato-{pid}-" in m]
    assert not [n for n in _shm_entries() - before if "sfumato" in n]


def test_a_killed_daemon_leaves_nothing_behind(daemon: DaemonProcess) -> None:
    before = _shm_entries()
    layer = _layer(640, 360)
    client = daemon.client(timeout_s=5.0)
    echoed = client.ping([layer])
    assert client.shares_memory
    daemon_pid = daemon.process.pid
    os.killpg(daemon_pid, signal.SIGKILL)
    daemon.process.wait(timeout=10)
    # the reply's pixels stay readable: the mapping holds the memory, not the daemon
    assert bytes(echoed[0].data) == bytes(layer.data)
    client.close()
    del echoed
    gc.collect()
    assert not [m for m in _memory_files("self", "maps") if f"sfumato-{daemon_pid}-" in m]
    assert not _memory_files("self", "fd")  # this client's request files are closed too
    assert not [n for n in _shm_entries() - before if "sfumato" in n]
