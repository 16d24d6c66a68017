"""Segment through a real daemon on a loopback socket, as a batch user runs it: `sfumato
segment` (click, box, rough selection) writes a mask the image's size, `sfumato cutout` a
transparent-background copy leaving the source alone, and words on a SAM 2 are refused naming
SAM 3 while the daemon keeps serving. Tiny SAM 2.1 and VitMatte, registered as `models add`
does."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.daemon_process import DaemonProcess, start_daemon
from tests.support.tiny_segmenters import build_tiny_sam2, build_tiny_vitmatte

pytestmark = pytest.mark.integration

HEIGHT, WIDTH = 75, 133


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    from sfumato.core.models.model_add import register_model
    from sfumato.core.models.registry import Registry

    tmp = tmp_path_factory.mktemp("segment-daemon")
    registry = Registry(tmp / "home")
    register_model(registry, "tiny-sam2", build_tiny_sam2(tmp / "tiny-sam2"))
    register_model(registry, "tiny-vitmatte", build_tiny_vitmatte(tmp / "tiny-vitmatte"))
    process = start_daemon(tmp / "home")
    yield process
    process.stop()


def _sfumato(daemon: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sfumato.core", *args], env=daemon.env(),
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    image = np.stack([x, y * 3, (x * y) % 256], axis=-1).astype(np.uint8)
    image[20:50, 40:90] = (250, 20, 20)
    path = tmp_path / "photo.png"
    Image.fromarray(image).save(path)
    return path


def test_segment_writes_a_mask_the_images_size(daemon: DaemonProcess, picture: Path,
                                               tmp_path: Path) -> None:
    out = tmp_path / "mask.png"
    done = _sfumato(daemon, "segment", str(picture), "--point", "60,30", "--point", "5,5,0",
                    "--box", "40,20,50,30", "-o", str(out))
    assert done.returncode == 0, done.stderr
    mask = Image.open(out)
    assert mask.mode == "L" and mask.size == (WIDTH, HEIGHT)
    assert set(np.unique(np.asarray(mask))) <= {0, 255}
    assert json.loads(done.stdout.splitlines()[-1])["model"] == "tiny-sam2"


def test_a_rough_selection_limits_the_mask_to_its_box_and_context(
        daemon: DaemonProcess, picture: Path, tmp_path: Path) -> None:
    rough = np.zeros((HEIGHT, WIDTH), np.uint8)
    rough[30:40, 60:70] = 255
    Image.fromarray(rough).save(tmp_path / "rough.png")
    out = tmp_path / "mask.png"
    done = _sfumato(daemon, "segment", str(picture), "--mask", str(tmp_path / "rough.png"),
                    "--context", "6", "-o", str(out))
    assert done.returncode == 0, done.stderr
    mask = np.asarray(Image.open(out))
    outside = np.ones_like(mask, bool)
    outside[24:46, 54:76] = False
    assert mask.shape == (HEIGHT, WIDTH) and not mask[outside].any()


def test_cutout_keeps_the_colour_and_the_source(daemon: DaemonProcess, picture: Path,
                                                tmp_path: Path) -> None:
    before = hashlib.sha256(picture.read_bytes()).hexdigest()
    out = tmp_path / "cut.png"
    done = _sfumato(daemon, "cutout", str(picture), "-o", str(out))
    assert done.returncode == 0, done.stderr
    cut = np.asarray(Image.open(out))
    source = np.asarray(Image.open(picture))
    assert cut.shape == (HEIGHT, WIDTH, 4)
    assert np.array_equal(cut[..., :3], source)  # colour untouched; only alpha is new
    assert hashlib.sha256(picture.read_bytes()).hexdigest() == before
    mask = tmp_path / "soft.png"
    assert _sfumato(daemon, "segment", str(picture), "--soft", "-o", str(mask)).returncode == 0
    assert np.array_equal(cut[..., 3], np.asarray(Image.open(mask)))  # alpha = soft mask
    refused = _sfumato(daemon, "cutout", str(picture), "-o", str(picture), "--overwrite")
    assert refused.returncode != 0
    assert hashlib.sha256(picture.read_bytes()).hexdigest() == before


def test_words_on_sam2_are_refused_naming_sam3_and_the_daemon_serves_on(
        daemon: DaemonProcess, picture: Path, tmp_path: Path) -> None:
    done = _sfumato(daemon, "segment", str(picture), "--text", "the red box", "-o",
                    str(tmp_path / "m.png"))
    assert done.returncode != 0
    assert "SAM 3" in done.stderr and "cannot take words" in done.stderr
    assert not (tmp_path / "m.png").exists()
    again = _sfumato(daemon, "segment", str(picture), "--point", "60,30", "-o",
                     str(tmp_path / "m.png"))
    assert again.returncode == 0, again.stderr


@pytest.mark.parametrize("flags", [["--point", "60"], ["--box", "1,2,0,4"],
                                   ["--point", "60,30,2"]])
def test_bad_prompt_flags_are_refused_before_any_job(daemon: DaemonProcess, picture: Path,
                                                     tmp_path: Path, flags: list[str]) -> None:
    done = _sfumato(daemon, "segment", str(picture), *flags, "-o", str(tmp_path / "m.png"))
    assert done.returncode != 0 and ("--point" in done.stderr or "--box" in done.stderr)
