"""Qwen-Image-Edit end to end on a tiny random-weight pipeline (Qwen2.5-VL text encoder that
reads the picture, Qwen-Image's 3D VAE and transformer), saved in the layout Qwen's releases
use and loaded through the real loader, in a process whose torchvision cannot load (CI's CPU
torch beside PyPI's CUDA torchvision): the picture goes through sfumato's picture-only
Qwen2.5-VL processor. What an artist would notice: the edit lands exactly over the selection,
nothing outside it changes, a seed repeats, the model works at its own 1 MP size (a smaller
one would come back zoomed) and says so when asked for another."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.raster import Layout
from sfumato.core.diffusion import repaint as repaint_module
from sfumato.core.errors import SfumatoError
from sfumato.core.models.diffusion_loader import load_pipeline
from sfumato.core.models.registry import ModelEntry
from sfumato.core.pixels.arrays import array_to_raster, raster_to_array
from sfumato.core.pixels.compose import composite_over
from sfumato.core.pixels.masks import soft_mask
from sfumato.core.tasks import edit

pytest_plugins = ["tests.support.tiny_fixtures"]

pytestmark = pytest.mark.integration

HEIGHT, WIDTH = 61, 97  # odd: no side a multiple of 8, 16 or 32
FAST = {"steps": 2, "instruction": "make it night", "feather": 4, "context": 8}


def _inputs(mask_box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    layer = np.random.default_rng(3).integers(0, 256, (HEIGHT, WIDTH, 4), dtype=np.uint8)
    layer[..., 3] = 255
    x0, y0, x1, y1 = mask_box
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[y0:y1, x0:x1] = 255
    return layer, mask, [array_to_raster(layer, Layout.RGBA8),
                         array_to_raster(mask, Layout.GRAY8)]


def test_qwen_image_edit_loads_without_torchvision_and_edits_the_selection_in_place(
        make_context: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline_calls: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
    real = repaint_module.generate

    def spy(pipe: Any, image: np.ndarray, mask: np.ndarray, *args: Any,
            **kwargs: Any) -> np.ndarray:
        out = real(pipe, image, mask, *args, **kwargs)
        pipeline_calls.append((type(pipe).__name__, image, mask, out))
        return out

    monkeypatch.setattr(repaint_module, "generate", spy)
    layer, mask, rasters = _inputs((33, 17, WIDTH, 44))  # touches the right edge
    first = edit.run(make_context({**FAST, "seed": 7, "variants": 2, "resolution": 256},
                                  rasters, "qwen-image-edit"))
    raster, _ = first.rasters
    x, y = first.info["offset"]
    # the selection's box plus the feather's reach and context, inside the layer
    assert 0 <= x <= 33 - 4 and 0 <= y <= 17 - 4
    assert x + raster.width == WIDTH and y + raster.height >= 44 + 4
    placed = composite_over(layer, raster_to_array(raster), (x, y))
    outside = soft_mask(mask, 0, 4) == 0
    assert np.array_equal(placed[outside], layer[outside])  # byte-identical outside
    assert (placed[mask > 0] != layer[mask > 0]).any()  # the model did edit the selection
    # the real Qwen inpaint variant (a selection) ran, at about 1 MP on a 32 grid, with the
    # selection as its mask, and gave back the size it was asked for
    (name, image, model_mask, out), (name_2, _, _, _) = pipeline_calls
    assert name == name_2 == "QwenImageEditInpaintPipeline"
    height, width = image.shape[:2]
    assert out.shape == image.shape and width % 32 == 0 and height % 32 == 0
    assert 0.9 < width * height / 1024 ** 2 < 1.1
    assert model_mask.shape == (height, width) and 0 < (model_mask > 0).mean() < 1
    assert any("own size" in w for w in first.info["warnings"])  # resolution 256 not used
    assert first.info["names"] == ["Edit: make it night (seed 7)",
                                   "Edit: make it night (seed 8)"]
    assert first.info["model"] == "qwen-image-edit"
    # the picture went through the picture-only processor (no video part, so no torchvision)
    context = make_context({}, [], "qwen-image-edit")
    pipe = context.models.load_pipeline(context.models.entry("qwen-image-edit", edit.MODEL_KINDS,
                                                             None), "edit")
    assert not hasattr(pipe.processor, "video_processor")
    assert type(pipe.processor.image_processor).__name__ == "Qwen2VLImageProcessorPil"

    again = edit.run(make_context({**FAST, "seed": 7}, rasters, "qwen-image-edit"))
    assert bytes(again.rasters[0].data) == bytes(raster.data)  # the seed repeats
    assert bytes(first.rasters[1].data) != bytes(raster.data)  # another seed, another edit


def test_qwen_image_edit_plus_edits_the_whole_layer_at_its_own_size(
        make_context: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # Plus reads the picture at 384² for its text encoder and 1 MP for its VAE, through the
    # same picture-only processor; with no selection it edits the whole layer
    names: list[str] = []
    real = repaint_module.generate

    def spy(pipe: Any, image: np.ndarray, *args: Any, **kwargs: Any) -> np.ndarray:
        out = real(pipe, image, *args, **kwargs)
        names.append(type(pipe).__name__)
        assert out.shape == image.shape and image.shape[0] % 32 == image.shape[1] % 32 == 0
        return out

    monkeypatch.setattr(repaint_module, "generate", spy)
    layer, _, _ = _inputs((0, 0, 1, 1))
    layer[:, :20, 3] = 0  # a cut-out: the left strip is transparent
    result = edit.run(make_context({**FAST, "seed": 3}, [array_to_raster(layer, Layout.RGBA8)],
                                   "qwen-image-edit-plus"))
    assert names == ["QwenImageEditPlusPipeline"]
    (raster,) = result.rasters
    assert (raster.width, raster.height) == (WIDTH, HEIGHT) and result.info["offset"] == [0, 0]
    pixels = raster_to_array(raster)
    assert (pixels[:, :20, 3] == 0).all() and (pixels[:, 20:, 3] == 255).all()
    assert (pixels[:, 20:, :3] != layer[:, 20:, :3]).any()


def test_a_qwen_folder_without_its_picture_settings_is_refused_as_incomplete(
        tiny_home: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(tiny_home / "models" / "diffusers" / "qwen-image-edit",
                                  tmp_path / "qwen"))
    settings = json.loads((folder / "processor" / "preprocessor_config.json").read_text())
    assert settings["image_processor_type"] == "Qwen2VLImageProcessor"  # as Qwen ships it
    (folder / "processor" / "preprocessor_config.json").unlink()
    with pytest.raises(SfumatoError) as caught:
        load_pipeline(ModelEntry("qwen", "qwen-image-edit", str(folder), "diffusers"),
                      "edit", "cpu", {})
    assert caught.value.code is ErrorCode.CORRUPT_WEIGHTS
    assert "preprocessor_config.json" in caught.value.message
