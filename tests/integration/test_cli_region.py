"""`sfumato upscale` beyond the plain upscale: `--region X,Y,W,H` (only that rectangle,
seen in its surroundings, as the plug-ins' selection-only upscale does) and `--refine MODEL`
(diffusion super-resolution), on one daemon."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.daemon_process import DaemonProcess
from tests.support.tiny_models import build_tiny_model
from tests.support.tiny_upscaler import build_tiny_upscaler

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "data"


def _sfumato(daemon: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sfumato.core", *args], env=daemon.env(),
                          capture_output=True, text=True, timeout=300)


def test_a_region_and_a_refine_from_the_command_line(daemon: DaemonProcess,
                                                    tmp_path: Path) -> None:
    model = build_tiny_upscaler(tmp_path / "tiny.safetensors")  # a 2x network
    assert _sfumato(daemon, "models", "add", "tiny", str(model)).returncode == 0
    sd15 = build_tiny_model("sd15", tmp_path / "sd15")
    assert _sfumato(daemon, "models", "add", "tiny-sd15", str(sd15)).returncode == 0
    source = tmp_path / "in.png"
    Image.open(DATA / "photo.png").crop((0, 0, 96, 72)).save(source)
    whole = _sfumato(daemon, "upscale", str(source), "--model", "tiny", "-o",
                     str(tmp_path / "whole.png"))
    assert whole.returncode == 0, whole.stderr
    part = _sfumato(daemon, "upscale", str(source), "--model", "tiny", "--region",
                    "30,20,24,16", "-o", str(tmp_path / "part.png"))
    assert part.returncode == 0, part.stderr

    region = np.asarray(Image.open(tmp_path / "part.png").convert("RGB")).astype(int)
    everything = np.asarray(Image.open(tmp_path / "whole.png").convert("RGB")).astype(int)
    assert region.shape == (32, 48, 3)  # 24x16 at 2x
    # the region saw its real neighbours: it is the whole image's upscale, cut out
    assert np.abs(region - everything[40:72, 60:108]).max() <= 1

    refined = _sfumato(daemon, "upscale", str(source), "--model", "tiny", "--refine",
                       "tiny-sd15", "--refine-steps", "2", "--refine-tile", "64",
                       "--refine-seed", "3", "-o", str(tmp_path / "refined.png"))
    assert refined.returncode == 0, refined.stderr
    reworked = np.asarray(Image.open(tmp_path / "refined.png").convert("RGB")).astype(int)
    assert reworked.shape == everything.shape and not np.array_equal(reworked, everything)
    # an upscaler is no refine model: refused at once, naming the kinds that work
    wrong = _sfumato(daemon, "upscale", str(source), "--model", "tiny", "--refine", "tiny",
                     "-o", str(tmp_path / "x.png"))
    assert wrong.returncode == 1 and "sd15" in wrong.stderr and "sdxl" in wrong.stderr


@pytest.mark.parametrize(("region", "words"), [
    ("30,20,0,16", "width and height must be above 0"),
    ("30,20,16", "write the region as X,Y,W,H"),
])
def test_a_malformed_region_is_refused_before_anything_runs(tmp_path: Path, region: str,
                                                            words: str) -> None:
    done = subprocess.run([sys.executable, "-m", "sfumato.core", "upscale",
                           str(DATA / "photo.png"), "--region", region],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and words in done.stderr
