"""The GPU tier: the same tasks on CUDA in the default speed options (bf16 pipelines, fp16
upscaler, batched tiles, optionally compiled) give the artist what the CPU path gives.
Deselected without CUDA (tests/conftest.py); run on the lent GPU machine with `-m gpu`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sfumato.bridge.raster import Layout
from sfumato.core.config import Settings
from sfumato.core.models.provider import WorkerModels
from sfumato.core.models.registry import ModelEntry, Registry
from sfumato.core.pixels.arrays import array_to_raster, raster_to_array
from sfumato.core.pixels.compose import composite_over
from sfumato.core.pixels.masks import soft_mask
from sfumato.core.task_api import TaskContext
from sfumato.core.tasks import inpaint, upscale

from tests.support.daemon_process import start_daemon
from tests.support.tiny_upscaler import build_tiny_upscaler

pytest_plugins = ["tests.support.tiny_fixtures"]

pytestmark = pytest.mark.gpu


def _layer(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    layer = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    layer[..., 3] = 255
    return layer


def _upscaler(home: Path, device: str, **settings: Any) -> WorkerModels:
    home.mkdir(parents=True, exist_ok=True)
    path = build_tiny_upscaler(home / "tiny.safetensors", features=16, convs=4)
    Registry(home).add(ModelEntry(name="tiny", kind="upscaler", path=str(path),
                                  format="safetensors"))
    return WorkerModels(Settings(home=home, endpoint="tcp://127.0.0.1:0", **settings), device)


def _upscale(models: WorkerModels, layer: np.ndarray, **params: Any) -> np.ndarray:
    ctx = TaskContext(params=params, rasters=[array_to_raster(layer, Layout.RGBA8)],
                      model_id="tiny", models=models, device=models.device)
    return raster_to_array(upscale.run(ctx).rasters[0]).astype(np.int32)


def test_cuda_upscale_matches_the_cpu_result(tmp_path: Path) -> None:
    layer = _layer(300, 420)
    cpu = _upscale(_upscaler(tmp_path / "cpu", "cpu"), layer, tile=128)
    cuda = _upscale(_upscaler(tmp_path / "cuda", "cuda"), layer, tile=128)  # fp16, batch 4
    assert cuda.shape == cpu.shape
    assert np.abs(cuda - cpu).mean() < 1.0 and np.abs(cuda - cpu).max() <= 8


def test_compiled_cuda_upscale_matches_eager(tmp_path: Path) -> None:
    layer = _layer(256, 256)
    eager = _upscale(_upscaler(tmp_path / "eager", "cuda"), layer, tile=128)
    compiled = _upscale(_upscaler(tmp_path / "compiled", "cuda", compile=True), layer, tile=128)
    assert np.abs(eager - compiled).max() <= 2


def test_cuda_inpaint_changes_only_the_selection(tiny_home: Path) -> None:
    models = WorkerModels(Settings(home=tiny_home, endpoint="tcp://127.0.0.1:0"), "cuda")
    layer = _layer(120, 160)
    mask = np.zeros((120, 160), np.uint8)
    mask[40:80, 60:110] = 255
    ctx = TaskContext(params={"steps": 4, "resolution": 256, "seed": 2, "prompt": "a lamp"},
                      rasters=[array_to_raster(layer, Layout.RGBA8),
                               array_to_raster(mask, Layout.GRAY8)],
                      model_id="sdxl-inpaint", models=models, device="cuda")
    output = inpaint.run(ctx)
    x, y = output.info["offset"]
    placed = composite_over(layer, raster_to_array(output.rasters[0]), (x, y))
    soft = soft_mask(mask, 4, 16)  # the task's default grow and feather
    diff = np.abs(placed.astype(np.int64) - layer.astype(np.int64))
    assert diff[soft == 0].max() == 0  # bit-identical outside the feathered selection
    assert diff[soft == 1.0].mean() > 2  # and the selection was repainted


def test_the_daemon_runs_jobs_on_cuda(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path / "home")
    try:
        with daemon.client(timeout_s=120.0) as client:
            assert client.status().device == "cuda"
    finally:
        daemon.stop()
