"""Edit models where artists keep them: an InstructPix2Pix original-layout (A1111/ComfyUI)
checkpoint and a FLUX.1 Kontext diffusers folder are found by a scan with the right kinds, the
checkpoint loads through diffusers' single-file loader offline (with a config folder) and edits
exactly as the folder it was written from."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sfumato.bridge.raster import Layout
from sfumato.core.models.diffusion_loader import detect_diffusion_kind
from sfumato.core.models.model_add import register_model
from sfumato.core.models.registry import Registry
from sfumato.core.models.sources import scan_model_sources
from sfumato.core.pixels.arrays import array_to_raster
from sfumato.core.task_api import TaskContext
from sfumato.core.tasks import edit

from tests.support.original_layout import save_original_layout_checkpoint
from tests.support.tiny_models import build_tiny_model

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network access attempted: {args[1:] or kwargs}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_a_scan_finds_edit_models_and_the_checkpoint_edits_as_its_folder(tmp_path: Path
                                                                         ) -> None:
    from sfumato.core.config import Settings
    from sfumato.core.models.provider import WorkerModels

    comfy = tmp_path / "ComfyUI"
    folder = build_tiny_model("instruct-pix2pix", tmp_path / "configs" / "ip2p")
    checkpoint = save_original_layout_checkpoint(
        folder, comfy / "models" / "checkpoints" / "instruct-pix2pix-00-22000.safetensors")
    build_tiny_model("flux-kontext", comfy / "models" / "diffusers" / "FLUX.1-Kontext-dev")
    found = {c.name: (c.kind, c.format) for c in scan_model_sources(comfy)}
    assert found == {"instruct-pix2pix-00-22000": ("instruct-pix2pix", "single_file"),
                     "flux.1-kontext-dev": ("flux-kontext", "diffusers")}
    assert detect_diffusion_kind(folder) == ("instruct-pix2pix", "diffusers")

    home = tmp_path / "home"
    registry = Registry(home)
    register_model(registry, "ip2p", folder)
    single = register_model(registry, "ip2p-single", checkpoint, config=folder)
    assert (single.kind, single.format) == ("instruct-pix2pix", "single_file")
    torch.set_num_threads(1)
    provider = WorkerModels(Settings(home=home, endpoint="tcp://127.0.0.1:0"), "cpu")
    layer = np.random.default_rng(3).integers(0, 256, (45, 71, 4), dtype=np.uint8)
    layer[..., 3] = 255
    params = {"instruction": "make it night", "steps": 2, "seed": 11, "resolution": 128}

    def run(model: str) -> bytes:
        ctx = TaskContext(params=params, rasters=[array_to_raster(layer, Layout.RGBA8)],
                          model_id=model, models=provider)
        return bytes(edit.run(ctx).rasters[0].data)

    assert run("ip2p-single") == run("ip2p")

