"""The `sfumato` command line as a batch user runs it: it starts a daemon when none answers,
reuses one that does, and writes files whose pixels outside the mask are the input's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.daemon_process import DaemonProcess, free_endpoint
from tests.support.tiny_models import build_tiny_model
from tests.support.tiny_upscaler import build_tiny_upscaler

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "data"


def sfumato(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sfumato.core", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_upscale_starts_a_daemon_then_reuses_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "SFUMATO_HOME": str(home), "SFUMATO_ENDPOINT": free_endpoint()}
    assert sfumato(env, "status").returncode == 1  # nothing answers yet
    model = build_tiny_upscaler(tmp_path / "tiny.safetensors")
    assert sfumato(env, "models", "add", "tiny", str(model)).returncode == 0
    folder = tmp_path / "in"
    folder.mkdir()
    Image.open(DATA / "photo.png").crop((0, 0, 40, 30)).save(folder / "a.png")
    Image.open(DATA / "photo.png").crop((50, 50, 70, 60)).convert("RGBA").save(folder / "b.png")
    try:
        first = sfumato(env, "upscale", str(folder), "-o", str(tmp_path / "out"), "--model",
                        "tiny", "--scale", "3")
        assert first.returncode == 0, first.stderr
        assert "starting a sfumato daemon" in first.stderr
        assert Image.open(tmp_path / "out" / "a-x3.png").size == (120, 90)
        assert Image.open(tmp_path / "out" / "b-x3.png").size == (60, 30)
        # an RGB file comes back RGB, an RGBA one keeps its alpha channel
        assert Image.open(tmp_path / "out" / "a-x3.png").mode == "RGB"
        assert Image.open(tmp_path / "out" / "b-x3.png").mode == "RGBA"
        status = sfumato(env, "status")
        assert status.returncode == 0 and "tiny" in status.stdout
        again = sfumato(env, "upscale", str(folder / "a.png"), "-o", str(tmp_path / "a2.png"),
                        "--model", "tiny")
        assert again.returncode == 0 and "starting" not in again.stderr  # reused
        assert Image.open(tmp_path / "a2.png").size == (80, 60)
    finally:
        _stop_auto_started_daemon(env["SFUMATO_ENDPOINT"], Path(env["SFUMATO_HOME"]))


def _stop_auto_started_daemon(endpoint: str, home: Path) -> None:
    from sfumato.bridge.client import Client, DaemonUnavailable
    from sfumato.bridge.transport import local_keys

    with Client(endpoint, timeout_s=2, curve=local_keys(home)) as client:
        try:
            os.kill(client.status().worker["daemon_pid"], signal.SIGTERM)
        except DaemonUnavailable:
            pass


@pytest.fixture
def diffusion_daemon(daemon: DaemonProcess, tmp_path: Path) -> DaemonProcess:
    folder = build_tiny_model("sd15-inpaint", tmp_path / "tiny-sd15-inpaint")
    added = sfumato(daemon.env(), "models", "add", "tiny-inpaint", str(folder))
    assert added.returncode == 0, added.stderr
    return daemon


def test_inpaint_and_refine_from_the_shell(diffusion_daemon: DaemonProcess,
                                           tmp_path: Path) -> None:
    env = diffusion_daemon.env()
    # an upscale first: spandrel and diffusers then share one worker process
    upscaler = build_tiny_upscaler(tmp_path / "tiny-up.safetensors")
    assert sfumato(env, "models", "add", "tiny-up", str(upscaler)).returncode == 0
    upscaled = sfumato(env, "upscale", str(DATA / "photo.png"), "--model", "tiny-up", "-o",
                       str(tmp_path / "up.png"))
    assert upscaled.returncode == 0, upscaled.stderr
    photo = np.asarray(Image.open(DATA / "photo.png").convert("RGB"))
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[60:110, 150:220] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out, layer = tmp_path / "out.png", tmp_path / "layer.png"
    done = sfumato(env, "inpaint", str(DATA / "photo.png"), "--mask", str(tmp_path / "mask.png"),
                   "--prompt", "a red kite", "--model", "tiny-inpaint", "--steps", "2",
                   "--seed", "7", "--grow", "2", "--feather", "4", "-o", str(out),
                   "--layer-out", str(layer))
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout.strip().splitlines()[-1])
    assert info["seed"] == 7
    result = np.asarray(Image.open(out).convert("RGB"))
    assert result.shape == photo.shape
    far = np.ones(mask.shape, bool)
    far[60 - 8:110 + 8, 150 - 8:220 + 8] = False  # outside the grown and feathered band
    assert np.array_equal(result[far], photo[far])
    assert not np.array_equal(result[60:110, 150:220], photo[60:110, 150:220])
    x, y = info["offset"]
    width, height = Image.open(layer).size
    assert x <= 150 and y <= 60 and x + width >= 220 and y + height >= 110

    kept = sfumato(env, "refine", str(DATA / "photo.png"), "--prompt", "oil paint",
                   "--strength", "0", "--model", "tiny-inpaint", "-o", str(tmp_path / "r.png"))
    assert kept.returncode == 0, kept.stderr
    assert np.array_equal(np.asarray(Image.open(tmp_path / "r.png").convert("RGB")), photo)

    wrong = sfumato(env, "inpaint", str(DATA / "photo.png"), "--mask",
                    str(tmp_path / "mask.png"), "--prompt", "x", "--model", "nope", "-o",
                    str(tmp_path / "x.png"))
    assert wrong.returncode == 1 and "models add" in wrong.stderr
