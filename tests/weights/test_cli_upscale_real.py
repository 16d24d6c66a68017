"""The main job end to end: `sfumato upscale` of a real photo on a fresh machine, through an
auto-started daemon that imports the bundled Real-ESRGAN weights itself on first use."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sfumato.bridge.client import Client
from sfumato.bridge.transport import local_keys

from tests.support.daemon_process import free_endpoint
from tests.weights.ncnn_reference import ncnn_reference, psnr

pytestmark = pytest.mark.weights

PHOTO = Path(__file__).resolve().parents[1] / "data" / "photo.png"
X4PLUS_NCNN_INDEX = 4


def test_cli_upscale_with_real_weights_matches_ncnn(tmp_path: Path) -> None:
    rgb = np.asarray(Image.open(PHOTO).convert("RGB"))[40:104, 60:140]  # 80x64: quick on CPU
    Image.fromarray(rgb).save(tmp_path / "in.png")
    endpoint = free_endpoint()
    env = {**os.environ, "SFUMATO_HOME": str(tmp_path / "home"), "SFUMATO_ENDPOINT": endpoint}
    try:
        done = subprocess.run([sys.executable, "-m", "sfumato.core", "upscale",
                               str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png")],
                              env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        listed = subprocess.run([sys.executable, "-m", "sfumato.core", "models", "list"],
                                env=env, capture_output=True, text=True, check=True)
        assert "realesrgan-x4plus" in listed.stdout  # imported on first use, no manual step
    finally:  # the daemon the CLI started, reached with the keys it made in its home
        with Client(endpoint, timeout_s=2, curve=local_keys(tmp_path / "home")) as client:
            os.kill(client.status().worker["daemon_pid"], signal.SIGTERM)
    ours = np.asarray(Image.open(tmp_path / "out.png").convert("RGB"))
    assert ours.shape == (64 * 4, 80 * 4, 3)
    reference = ncnn_reference(rgb, X4PLUS_NCNN_INDEX, tmp_path)
    assert psnr(ours, reference) >= 35.0
