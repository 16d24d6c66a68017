"""Jobs from the command line as a user drives them: Ctrl-C and SIGTERM cancel, `sfumato
cancel` and `sfumato stop`, what `status` and the daemon's log say about who runs what, and
the files jobs leave behind: where results go, that nothing is overwritten unasked, that
grey, 16 bits and the colour profile survive. Real `sfumato` processes against one real
daemon; signals go to the CLI process itself; files are inspected after."""

from __future__ import annotations

import os
import re
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageCms, PngImagePlugin
from sfumato.core.pixels.arrays import array_to_raster, rgba_layout_for

from tests.support.daemon_process import DaemonProcess, free_endpoint, start_daemon
from tests.support.tiny_upscaler import build_tiny_upscaler

pytestmark = pytest.mark.integration

SETTLE_S = 10.0  # generous (a busy CI machine): a step of the slow net takes about 0.1 s


def sfumato(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sfumato.core", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def start(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sfumato.core", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """One daemon for the module, with `slow`: an x2 net slow enough on the CPU (a 384 px
    image takes about half a minute) that a job is surely still running when cancelled."""
    root = tmp_path_factory.mktemp("cli-jobs")
    process = start_daemon(root / "home")
    process.add_model("slow", build_tiny_upscaler(root / "slow.safetensors", features=32,
                                                  convs=8))
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (384, 384, 3), dtype=np.uint8)).save(root / "big.png")
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / "small.png")
    yield process
    process.stop()


def _inputs(daemon: DaemonProcess) -> tuple[str, str]:
    root = daemon.home.parent
    return str(root / "big.png"), str(root / "small.png")


def wait_for(daemon: DaemonProcess, check: Any, what: str, timeout_s: float = 120) -> Any:
    deadline = time.monotonic() + timeout_s
    with daemon.client(timeout_s=10.0) as client:
        while time.monotonic() < deadline:
            report = client.status()
            found = check(report)
            if found:
                return found
            time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last status: running "
                         f"{report.running}, queued {report.queued}")


def running_with_progress(pid: int) -> Any:
    """A status check: the running job of the CLI process `pid`, once it reports progress."""
    def check(report: Any) -> Any:
        job = report.running
        if job and job["client"] == f"sfumato upscale[{pid}]" and job["step"] > 0:
            return job
        return None
    return check


def job_lines(daemon: DaemonProcess, job_id: str) -> list[tuple[datetime, str]]:
    """The daemon log's lines for one job's end: (time, text)."""
    found = []
    for line in (daemon.home / "logs" / "daemon.log").read_text().splitlines():
        if f" job {job_id} for " in line:
            found.append((datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f"), line))
    return found


def test_ctrl_c_cancels_and_the_next_job_starts_at_once(daemon: DaemonProcess,
                                                        tmp_path: Path) -> None:
    env = daemon.env()
    big, small = _inputs(daemon)
    first = start(env, "upscale", big, "--model", "slow", "--tile", "64", "-o",
                  str(tmp_path / "big-out.png"))
    job = wait_for(daemon, running_with_progress(first.pid), "the first job's progress")
    status = sfumato(env, "status")  # the person's view: who runs what, and how far
    line = next(x for x in status.stdout.splitlines() if x.startswith("running:"))
    assert f"{job['job_id']} upscale for sfumato upscale[{first.pid}]" in line
    assert re.search(r": [1-9]\d*/[1-9]\d* ", line), line

    second = start(env, "upscale", small, "--model", "slow", "-o",
                   str(tmp_path / "small-out.png"))
    queued = wait_for(daemon, lambda r: r.queued, "the second job to wait")[0]
    assert queued["client"] == f"sfumato upscale[{second.pid}]"

    interrupted_at = datetime.now()  # the daemon's log is in this machine's local time
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=30)
    assert first.returncode == 130, err
    assert f"job {job['job_id']} cancelled" in err, err
    _, err2 = second.communicate(timeout=60)
    assert second.returncode == 0, err2
    assert Image.open(tmp_path / "small-out.png").size == (32, 32)
    assert not (tmp_path / "big-out.png").exists()

    (ended_at, ended), = job_lines(daemon, job["job_id"])  # one line per job
    assert f"for sfumato upscale[{first.pid}]: upscale slow" in ended
    assert ended.endswith("cancelled")
    (next_at, next_line), = job_lines(daemon, queued["job_id"])
    assert next_line.endswith("result")
    # the cancelled job let go within a tile, and the waiting one ran right after: the
    # whole picture would have taken the slow net half a minute more
    assert (ended_at - interrupted_at).total_seconds() < SETTLE_S
    assert (next_at - ended_at).total_seconds() < SETTLE_S


def test_sigterm_and_sfumato_cancel_stop_only_your_own_jobs(daemon: DaemonProcess,
                                                           tmp_path: Path) -> None:
    env = daemon.env()
    big, small = _inputs(daemon)
    running = start(env, "upscale", big, "--model", "slow", "--tile", "64", "-o",
                    str(tmp_path / "a.png"))
    job = wait_for(daemon, running_with_progress(running.pid), "the job's progress")
    waiting = start(env, "upscale", small, "--model", "slow", "-o", str(tmp_path / "b.png"))
    queued = wait_for(daemon, lambda r: r.queued, "the second job to wait")[0]

    with daemon.client() as plugin:  # another program, e.g. a plug-in: not "mine"
        pixels = np.full((8, 8, 4), 200, np.uint8)
        theirs = plugin.submit("upscale", {}, [array_to_raster(pixels,
                                                               rgba_layout_for(pixels.dtype))],
                               "slow")
        refused = sfumato(env, "cancel", theirs.job_id)
        assert refused.returncode == 1 and "belongs to another client" in refused.stderr

        waiting.send_signal(signal.SIGTERM)  # e.g. the script running it was killed
        waiting.communicate(timeout=30)
        assert waiting.returncode == 130
        (_, line), = job_lines(daemon, queued["job_id"])
        assert "never ran" in line and line.endswith("cancelled")

        mine = sfumato(env, "cancel", "--all-mine")
        assert mine.returncode == 0, mine.stderr
        assert f"cancelled {job['job_id']}" in mine.stdout
        _, err = running.communicate(timeout=30)
        assert running.returncode == 1 and "cancelled" in err
        # the plug-in's job was left alone, and runs now
        outcome = plugin.run("upscale", {}, [array_to_raster(pixels,
                                                             rgba_layout_for(pixels.dtype))],
                             "slow")
        assert outcome.rasters[0].width == 16
        status = plugin.status()
        assert status.running is None and not status.queued
    assert [line for _, line in job_lines(daemon, theirs.job_id)][0].endswith("result")


def test_a_vanished_commands_job_runs_on_and_another_sfumato_can_cancel_it(
        daemon: DaemonProcess, tmp_path: Path) -> None:
    """No goodbye (killed outright): the job is kept, as a crashed plug-in's is, and the log
    says the client is gone once, not once per step."""
    env = daemon.env()
    big, _ = _inputs(daemon)
    killed = start(env, "upscale", big, "--model", "slow", "--tile", "64", "-o",
                   str(tmp_path / "a.png"))
    job = wait_for(daemon, running_with_progress(killed.pid), "the job's progress")
    killed.kill()
    killed.wait(timeout=10)
    later = wait_for(daemon, lambda r: r.running if r.running and r.running["step"] >
                     job["step"] + 20 else None, "the job to run on")
    assert later["job_id"] == job["job_id"]
    done = sfumato(env, "cancel", job["job_id"])  # another process of the same user
    assert done.returncode == 0, done.stderr
    assert f"cancelled {job['job_id']}" in done.stdout
    (_, line), = job_lines(daemon, job["job_id"])
    assert line.endswith("cancelled")
    log = (daemon.home / "logs" / "daemon.log").read_text()
    assert log.count(f"sfumato upscale[{killed.pid}] unreachable") == 1


def _picture(path: Path, size: tuple[int, int], seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def test_folder_results_go_beside_it_and_are_never_overwritten_unasked(
        daemon: DaemonProcess, tmp_path: Path) -> None:
    env = daemon.env()
    scans = tmp_path / "scans"
    scans.mkdir()
    _picture(scans / "a.png", (12, 10))
    _picture(scans / "b.png", (6, 8), 1)
    # a single file's result lands beside it; a later run over the folder must skip it
    single = sfumato(env, "upscale", str(scans / "a.png"), "--model", "slow")
    assert single.returncode == 0, single.stderr
    assert Image.open(scans / "a-x2.png").size == (24, 20)

    first = sfumato(env, "upscale", str(scans), "--model", "slow")
    assert first.returncode == 0, first.stderr
    results = tmp_path / "scans-upscaled"
    assert sorted(p.name for p in results.iterdir()) == ["a-x2.png", "b-x2.png"]
    assert sorted(p.name for p in scans.iterdir()) == ["a-x2.png", "a.png", "b.png"]

    before = {p.name: p.read_bytes() for p in results.iterdir()}
    _picture(scans / "a.png", (12, 10), seed=5)  # the input changed; its old result stays
    again = sfumato(env, "upscale", str(scans), "--model", "slow")
    assert again.returncode == 1
    assert "exists" in again.stderr and "--overwrite" in again.stderr
    assert {p.name: p.read_bytes() for p in results.iterdir()} == before
    assert not [p for p in results.iterdir() if p.name.startswith(".")]  # no half-written file

    replaced = sfumato(env, "upscale", str(scans), "--model", "slow", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert (results / "a-x2.png").read_bytes() != before["a-x2.png"]


def _grey16_with_profile(path: Path, icc: bytes) -> np.ndarray:
    ramp = (np.arange(16 * 12, dtype=np.uint16).reshape(12, 16) * 331).astype(np.uint16)
    info = PngImagePlugin.PngInfo()
    info.add(b"gAMA", struct.pack(">I", 45455))
    Image.fromarray(ramp).save(path, icc_profile=icc, pnginfo=info)
    return ramp


def test_grey_16_bit_stays_grey_16_bit_with_its_profile(daemon: DaemonProcess,
                                                        tmp_path: Path) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()  # LittleCMS's
    source = tmp_path / "grey16.png"
    _grey16_with_profile(source, icc)
    assert Image.open(source).mode == "I;16" and Image.open(source).info["gamma"] == 0.45455
    photo = tmp_path / "photo.jpg"
    Image.open(_picture(tmp_path / "p.png", (16, 12))).save(photo, icc_profile=icc)

    done = sfumato(daemon.env(), "upscale", str(source), str(photo), "-o",
                   str(tmp_path / "out"), "--model", "slow")
    assert done.returncode == 0, done.stderr
    grey = Image.open(tmp_path / "out" / "grey16-x2.png")
    assert grey.mode == "I;16" and grey.size == (32, 24)  # one 16-bit channel, no tint
    assert grey.info.get("icc_profile") == icc
    assert grey.info.get("gamma") == 0.45455
    values = np.asarray(grey, dtype=np.uint16)
    assert len(np.unique(values)) > 256  # real 16-bit detail, not 8 bits scaled up
    colour = Image.open(tmp_path / "out" / "photo-x2.png")
    assert colour.mode == "RGB" and colour.info.get("icc_profile") == icc


def test_inpaint_without_weights_says_which_work_and_how_to_get_them(
        daemon: DaemonProcess, tmp_path: Path) -> None:
    image = _picture(tmp_path / "img.png", (16, 16))
    mask = tmp_path / "mask.png"
    Image.new("L", (16, 16), 255).save(mask)
    done = sfumato(daemon.env(), "inpaint", str(image), "--mask", str(mask), "--prompt", "x",
                   "-o", str(tmp_path / "out.png"))
    assert done.returncode == 1
    for needed in ("SDXL", "inpainting", "sfumato models add", "sfumato models scan",
                   "ComfyUI", "A1111", "huggingface", "sfumato models pull"):
        assert needed in done.stderr, needed
    assert not (tmp_path / "out.png").exists()


def test_sfumato_stop_stops_the_daemon_gracefully(tmp_path: Path) -> None:
    """Its own daemon, stopped while its worker may still be starting: no model work needed."""
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "SFUMATO_HOME": str(home), "SFUMATO_ENDPOINT": free_endpoint()}
    serving = subprocess.Popen([sys.executable, "-m", "sfumato.core", "serve"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while sfumato(env, "status").returncode != 0:
            assert serving.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        done = sfumato(env, "stop")
        assert done.returncode == 0, done.stderr
        assert f"stopped the daemon (pid {serving.pid})" in done.stdout
        assert serving.wait(timeout=10) == 0
        again = sfumato(env, "stop")
        assert again.returncode == 0 and "nothing to stop" in again.stdout
    finally:
        if serving.poll() is None:
            os.killpg(serving.pid, signal.SIGKILL)
