"""What the command line does with files, inspected after real `sfumato` processes ran against
a real daemon: where results go, that nothing is overwritten unasked, that grey, 16 bits and
the colour profile survive, and that refusals come early and in the command line's words."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, PngImagePlugin

from tests.daemon_process import DaemonProcess, free_endpoint, start_daemon
from tests.tiny_upscaler import build_tiny_upscaler

pytestmark = pytest.mark.integration


def sfumato(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sfumato.core", *args], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """One daemon for the whole module, with a tiny x2 upscaler as `tiny`."""
    root = tmp_path_factory.mktemp("cli-files")
    process = start_daemon(root / "home")
    process.add_model("tiny", build_tiny_upscaler(root / "tiny.safetensors"))
    yield process
    process.stop()


def no_daemon_env(tmp_path: Path, config: str = "") -> dict[str, str]:
    """An environment where no daemon answers: a refusal here came before any was needed."""
    home = tmp_path / "lonely-home"
    home.mkdir(exist_ok=True)
    if config:
        (home / "config.toml").write_text("[daemon]\n" + config)
    return {**os.environ, "SFUMATO_HOME": str(home), "SFUMATO_ENDPOINT": free_endpoint()}


def _picture(path: Path, size: tuple[int, int], seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def test_one_output_file_for_several_inputs_is_refused(tmp_path: Path) -> None:
    a, b = _picture(tmp_path / "a.png", (8, 8)), _picture(tmp_path / "b.png", (8, 8), 1)
    done = sfumato(no_daemon_env(tmp_path), "upscale", str(a), str(b), "-o",
                   str(tmp_path / "one.png"))
    assert done.returncode == 1
    assert "-o" in done.stderr and "2 input images" in done.stderr and "folder" in done.stderr
    assert not (tmp_path / "one.png").exists()  # neither a file nor a folder of that name
    assert "starting a sfumato daemon" not in done.stderr


def test_folder_results_go_beside_it_and_are_never_overwritten_unasked(
        daemon: DaemonProcess, tmp_path: Path) -> None:
    env = daemon.env()
    scans = tmp_path / "scans"
    scans.mkdir()
    _picture(scans / "a.png", (12, 10))
    _picture(scans / "b.png", (6, 8), 1)
    # a single file's result lands beside it; a later run over the folder must skip it
    single = sfumato(env, "upscale", str(scans / "a.png"), "--model", "tiny")
    assert single.returncode == 0, single.stderr
    assert Image.open(scans / "a-x2.png").size == (24, 20)

    first = sfumato(env, "upscale", str(scans), "--model", "tiny")
    assert first.returncode == 0, first.stderr
    results = tmp_path / "scans-upscaled"
    assert sorted(p.name for p in results.iterdir()) == ["a-x2.png", "b-x2.png"]
    assert sorted(p.name for p in scans.iterdir()) == ["a-x2.png", "a.png", "b.png"]

    before = {p.name: p.read_bytes() for p in results.iterdir()}
    _picture(scans / "a.png", (12, 10), seed=5)  # the input changed; its old result stays
    again = sfumato(env, "upscale", str(scans), "--model", "tiny")
    assert again.returncode == 1
    assert "exists" in again.stderr and "--overwrite" in again.stderr
    assert {p.name: p.read_bytes() for p in results.iterdir()} == before
    assert not [p for p in results.iterdir() if p.name.startswith(".")]  # no half-written file

    replaced = sfumato(env, "upscale", str(scans), "--model", "tiny", "--overwrite")
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
    ramp = _grey16_with_profile(source, icc)
    assert Image.open(source).mode == "I;16" and Image.open(source).info["gamma"] == 0.45455
    photo = tmp_path / "photo.jpg"
    Image.open(_picture(tmp_path / "p.png", (16, 12))).save(photo, icc_profile=icc)

    done = sfumato(daemon.env(), "upscale", str(source), str(photo), "-o",
                   str(tmp_path / "out"), "--model", "tiny")
    assert done.returncode == 0, done.stderr
    grey = Image.open(tmp_path / "out" / "grey16-x2.png")
    assert grey.mode == "I;16" and grey.size == (32, 24)  # one 16-bit channel, no tint
    assert grey.info.get("icc_profile") == icc
    assert grey.info.get("gamma") == 0.45455
    values = np.asarray(grey, dtype=np.uint16)
    assert len(np.unique(values)) > 256  # real 16-bit detail, not 8 bits scaled up
    assert abs(float(values.mean()) - float(ramp.mean())) < 0.25 * float(ramp.mean())
    colour = Image.open(tmp_path / "out" / "photo-x2.png")
    assert colour.mode == "RGB" and colour.info.get("icc_profile") == icc


def _header_only_png(path: Path, width: int, height: int) -> None:
    """A PNG whose header says width×height and whose pixel data is cut short: only a tool
    that reads the header first can say how large it is."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    body = zlib.compress(bytes(1000))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body))


def test_a_huge_image_is_refused_from_its_header_with_the_limit(tmp_path: Path) -> None:
    huge = tmp_path / "huge.png"
    _header_only_png(huge, 20000, 20000)
    done = sfumato(no_daemon_env(tmp_path, "max_pixels = 50000000\n"), "upscale", str(huge))
    assert done.returncode == 1
    assert "20000×20000" in done.stderr and "400 MP" in done.stderr
    assert "50 MP" in done.stderr and "max_pixels" in done.stderr  # the configured limit
    assert "starting a sfumato daemon" not in done.stderr


def test_a_mask_of_another_size_is_refused_in_the_command_lines_words(tmp_path: Path) -> None:
    image = _picture(tmp_path / "img.png", (64, 48))
    mask = tmp_path / "mask.png"
    Image.new("L", (32, 32), 255).save(mask)
    done = sfumato(no_daemon_env(tmp_path), "inpaint", str(image), "--mask", str(mask),
                   "--prompt", "a kite", "-o", str(tmp_path / "out.png"))
    assert done.returncode == 1
    assert "the mask is 32×32 but the image is 64×48" in done.stderr
    assert "layer" not in done.stderr and "selection" not in done.stderr


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


def test_models_scan_of_a_missing_folder_fails(tmp_path: Path) -> None:
    done = sfumato(no_daemon_env(tmp_path), "models", "scan", str(tmp_path / "nonexistent"))
    assert done.returncode == 1
    assert "is not a folder" in done.stderr and "ComfyUI" in done.stderr


def test_doctor_says_what_torchvision_lacks_once(tmp_path: Path) -> None:
    done = sfumato(no_daemon_env(tmp_path), "doctor")
    lines = [line for line in (done.stdout + done.stderr).splitlines() if "torchvision" in line]
    assert len(lines) <= 1, lines  # the upscalers line says it; no logger says it again
