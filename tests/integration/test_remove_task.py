"""The remove task on real parts: a tiny LaMa registered with `models add` and loaded through
the real loader (spandrel, .safetensors), MAT at its one real shape, OpenCV's Telea with no
fill model, a tiny SD 1.5 inpaint pipeline refining the fill. The torchvision here is
unusable, so these also show that LaMa runs beside the stand-in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.raster import Layout
from sfumato.core.errors import SfumatoError
from sfumato.core.pixels.arrays import array_to_raster, raster_to_array
from sfumato.core.pixels.compose import composite_over
from sfumato.core.pixels.masks import soft_mask
from sfumato.core.tasks import remove

from tests.support.tiny_fill import build_mat, build_tiny_lama

pytest_plugins = ["tests.support.tiny_fixtures"]

pytestmark = pytest.mark.integration

HEIGHT, WIDTH = 160, 240
SKY, OBJECT = (40, 110, 190), (230, 30, 20)
EDGES = {"grow": 4, "feather": 6, "context": 24}


@pytest.fixture(scope="module")
def lama(tiny_home: Path) -> str:
    """A tiny LaMa in the tiny store, registered as `sfumato models add` does."""
    from sfumato.core.models.model_add import register_model
    from sfumato.core.models.registry import Registry

    path = build_tiny_lama(tiny_home / "models" / "inpaint" / "tiny-lama.safetensors")
    entry = register_model(Registry(tiny_home), "tiny-lama", path)
    assert (entry.kind, entry.format) == ("lama", "safetensors")
    return entry.name


def _scene(dtype: type = np.uint8) -> tuple[np.ndarray, np.ndarray]:
    """A striped sky with a red object; the mask covers the object."""
    top = np.iinfo(dtype).max
    scale = top / 255
    layer = np.zeros((HEIGHT, WIDTH, 4), dtype)
    layer[..., :3] = (np.array(SKY) * scale).astype(dtype)
    layer[::8, :, :3] = (np.array((220, 220, 230)) * scale).astype(dtype)  # texture
    layer[..., 3] = top
    layer[60:100, 100:150, :3] = (np.array(OBJECT) * scale).astype(dtype)
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[58:102, 98:152] = 255
    return layer, mask


def _run(make_context: Callable[..., Any], params: dict[str, Any], layer: np.ndarray,
         mask: np.ndarray, model: str | None, layout: Layout = Layout.RGBA8, **extra: Any) -> Any:
    rasters = [array_to_raster(layer, layout), array_to_raster(mask, Layout.GRAY8)]
    return remove.run(make_context({**EDGES, **params}, rasters, model, **extra))


def _placed(layer: np.ndarray, result: Any) -> tuple[np.ndarray, np.ndarray]:
    """The composite and, per pixel, whether it lies outside the feathered selection."""
    (raster,) = result.rasters
    placed = composite_over(layer, raster_to_array(raster), tuple(result.info["offset"]))
    _, mask = _scene()
    outside = soft_mask(mask, EDGES["grow"], EDGES["feather"]) == 0
    return placed, outside


def test_lama_fills_the_selection_and_nothing_else(make_context: Callable[..., Any],
                                                   lama: str) -> None:
    layer, mask = _scene()
    result = _run(make_context, {}, layer, mask, lama)
    (raster,) = result.rasters
    x, y = result.info["offset"]
    # the crop is the selection's box plus grow, feather and context, not the layer
    assert 0 < x <= 98 - 24 and 0 < y <= 58 - 24
    assert 152 + 24 <= x + raster.width < WIDTH and 102 + 24 <= y + raster.height < HEIGHT
    assert raster.layout is Layout.RGBA8
    placed, outside = _placed(layer, result)
    assert np.array_equal(placed[outside], layer[outside])  # bit-identical outside
    assert (placed[60:100, 100:150] != layer[60:100, 100:150]).any()  # the object was filled
    assert result.info["names"] == ["Remove (tiny-lama)"] and result.info["model"] == lama
    assert result.info["warnings"] == [] and "seeds" not in result.info


def test_lama_is_the_default_and_16_bit_layers_stay_16_bit(
        make_context: Callable[..., Any], lama: str) -> None:
    layer, mask = _scene(np.uint16)
    result = _run(make_context, {}, layer, mask, None, Layout.RGBA16)
    assert result.info["model"] == lama  # the registered LaMa, with no model named
    assert result.rasters[0].layout is Layout.RGBA16
    placed, outside = _placed(layer, result)
    assert np.array_equal(placed[outside], layer[outside])


def test_with_no_fill_model_telea_removes_the_object_and_says_so(
        make_context: Callable[..., Any], tmp_path: Path) -> None:
    from sfumato.core.config import Settings
    from sfumato.core.models.provider import WorkerModels

    empty = WorkerModels(Settings(home=tmp_path, endpoint="tcp://127.0.0.1:0"), "cpu")
    layer, mask = _scene()
    result = _run(make_context, {}, layer, mask, None, models=empty)
    assert result.info["names"] == ["Remove (Telea)"]
    assert any("big-lama.safetensors" in w for w in result.info["warnings"])
    placed, outside = _placed(layer, result)
    assert np.array_equal(placed[outside], layer[outside])
    inside = placed[70:90, 110:140, :3].reshape(-1, 3).astype(int)
    # the red is gone: what is there now is the sky's colour, from around the hole
    assert inside[:, 0].mean() < 120 and inside[:, 2].mean() > 150


@pytest.mark.parametrize("model", ["sd15-inpaint", "sdxl-inpaint", "flux-fill"])
def test_a_diffusion_model_refines_the_fill_without_touching_the_rest(
        make_context: Callable[..., Any], lama: str, model: str) -> None:
    layer, mask = _scene()
    steps: list[tuple[int, int, str]] = []
    params = {"refine_strength": 0.6, "steps": 2, "seed": 11, "resolution": 128,
              "fill_model": lama}
    result = _run(make_context, params, layer, mask, model,
                  progress=lambda step, total, stage: steps.append((step, total, stage)))
    assert result.info["seeds"] == [11] and result.info["model"] == model
    assert result.info["names"] == [f"Remove ({model}, seed 11)"]
    placed, outside = _placed(layer, result)
    assert np.array_equal(placed[outside], layer[outside])
    assert (placed[60:100, 100:150] != layer[60:100, 100:150]).any()
    assert ("fill" in {s[2] for s in steps}) and any(s[2] == "denoise" for s in steps)
    # strength 0 keeps the fill: the LaMa result, without a denoising step
    kept = _run(make_context, {**params, "refine_strength": 0.0}, layer, mask, model)
    alone = _run(make_context, {}, layer, mask, lama)
    assert np.array_equal(raster_to_array(kept.rasters[0]), raster_to_array(alone.rasters[0]))


def test_mat_fills_the_selection_through_its_512_square(make_context: Callable[..., Any],
                                                        tiny_home: Path) -> None:
    from sfumato.core.models.model_add import register_model
    from sfumato.core.models.registry import Registry

    # MAT at its real (only) size, random weights: one pass, 7-13 s on this CPU
    path = build_mat(tiny_home / "models" / "inpaint" / "MAT_Places512_G_fp16.safetensors")
    entry = register_model(Registry(tiny_home), "mat", path)
    assert (entry.kind, entry.format) == ("mat", "safetensors")
    layer, mask = _scene()
    result = _run(make_context, {}, layer, mask, "mat")
    (raster,) = result.rasters
    x, y = result.info["offset"]
    # the crop went to MAT's 512² square and came back at the crop's own size and place
    assert 0 < x <= 98 - 24 and 0 < y <= 58 - 24
    assert 152 + 24 <= x + raster.width < WIDTH and 102 + 24 <= y + raster.height < HEIGHT
    placed, outside = _placed(layer, result)
    assert np.array_equal(placed[outside], layer[outside])  # bit-identical outside
    assert (placed[60:100, 100:150] != layer[60:100, 100:150]).any()  # the object was filled
    assert result.info["names"] == ["Remove (mat)"] and result.info["model"] == "mat"


@pytest.mark.parametrize(("model", "params", "code", "words"), [
    ("sd15", {}, ErrorCode.WRONG_MODEL_KIND, "this task needs a"),
    ("sd15-inpaint", {"fill_model": "sdxl"}, ErrorCode.WRONG_MODEL_KIND, "lama or mat"),
    ("tiny-lama", {"context": -1}, ErrorCode.BAD_PARAMS, "context must be"),
])
def test_wrong_models_and_params_are_refused(make_context: Callable[..., Any], lama: str,
                                              model: str, params: dict[str, Any],
                                              code: ErrorCode, words: str) -> None:
    layer, mask = _scene()
    with pytest.raises(SfumatoError) as caught:
        _run(make_context, params, layer, mask, model)
    assert caught.value.code is code and words in caught.value.message


def test_an_empty_selection_is_refused(make_context: Callable[..., Any], lama: str) -> None:
    layer, mask = _scene()
    with pytest.raises(SfumatoError) as caught:
        _run(make_context, {}, layer, np.zeros_like(mask), lama)
    assert caught.value.code is ErrorCode.EMPTY_SELECTION
    assert "select the object to remove" in caught.value.message
