"""What the command line refuses before any daemon is needed, in its own words: one output
file for several inputs, an image over the size limit (read from its header), a mask of
another size, a missing folder to scan; and what `doctor` says once. Real `sfumato`
processes, with no daemon answering at their endpoint."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.daemon_process import free_endpoint

pytestmark = pytest.mark.integration


def sfumato(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sfumato.core", *args], env=env,
                          capture_output=True, text=True, timeout=300)


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




def test_models_scan_of_a_missing_folder_fails(tmp_path: Path) -> None:
    done = sfumato(no_daemon_env(tmp_path), "models", "scan", str(tmp_path / "nonexistent"))
    assert done.returncode == 1
    assert "is not a folder" in done.stderr and "ComfyUI" in done.stderr


def test_doctor_says_what_torchvision_lacks_once(tmp_path: Path) -> None:
    done = sfumato(no_daemon_env(tmp_path), "doctor")
    lines = [line for line in (done.stdout + done.stderr).splitlines() if "torchvision" in line]
    assert len(lines) <= 1, lines  # the upscalers line says it; no logger says it again
