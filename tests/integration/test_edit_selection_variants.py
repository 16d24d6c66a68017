"""Edit over a selection with the families' inpaint variants (FluxKontextInpaintPipeline; Qwen's
in tests/integration/test_edit_qwen.py): only the mask is repainted, the picture's latents are
kept outside it, so what the model gives back away from the selection is the same whatever
the seed, and the crop plus context still lands exactly in place."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sfumato.bridge.raster import Layout
from sfumato.core.diffusion import repaint as repaint_module
from sfumato.core.pixels.arrays import array_to_raster, raster_to_array
from sfumato.core.pixels.compose import composite_over
from sfumato.core.pixels.masks import soft_mask
from sfumato.core.tasks import edit

pytest_plugins = ["tests.support.tiny_fixtures"]

pytestmark = pytest.mark.integration

HEIGHT, WIDTH = 75, 131
FAST = {"steps": 2, "resolution": 256, "instruction": "make it night", "feather": 4,
        "context": 40}

Call = tuple[str, np.ndarray, np.ndarray | None]


@pytest.fixture
def pipeline_calls(monkeypatch: pytest.MonkeyPatch) -> list[Call]:
    """(pipeline class, what it returned, the mask it was given) of each real call."""
    calls: list[Call] = []
    real = repaint_module.generate

    def spy(pipe: Any, image: np.ndarray, mask: np.ndarray | None, *args: Any,
            **kwargs: Any) -> np.ndarray:
        out = real(pipe, image, mask, *args, **kwargs)
        calls.append((type(pipe).__name__, out, None if mask is None else mask.copy()))
        return out

    monkeypatch.setattr(repaint_module, "generate", spy)
    return calls


def _layer() -> np.ndarray:
    layer = np.random.default_rng(5).integers(0, 256, (HEIGHT, WIDTH, 4), dtype=np.uint8)
    layer[..., 3] = 255
    return layer


def test_kontext_over_a_selection_repaints_only_the_mask_and_keeps_the_rest_whatever_the_seed(
        make_context: Callable[..., Any], pipeline_calls: list[Call]) -> None:
    layer = _layer()
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[30:50, 50:80] = 255
    rasters = [array_to_raster(layer, Layout.RGBA8), array_to_raster(mask, Layout.GRAY8)]
    result = edit.run(make_context({**FAST, "seed": 7, "variants": 2}, rasters,
                                   "flux-kontext"))
    assert [name for name, _, _ in pipeline_calls] == ["FluxKontextInpaintPipeline"] * 2
    (_, first, model_mask), (_, second, _) = pipeline_calls
    assert model_mask is not None and 0 < (model_mask > 0).mean() < 0.5
    # away from the mask the model gave back the picture's own latents, decoded: nearly the
    # same for both seeds (the VAE's mid-block attention reaches everywhere, a little); inside,
    # each seed painted its own
    far = soft_mask((model_mask > 0).astype(np.uint8) * 255, 24, 0) == 0
    inside = model_mask > 0
    assert far.mean() > 0.2
    apart_far = np.abs(first[far] - second[far]).mean()
    apart_inside = np.abs(first[inside] - second[inside]).mean()
    assert apart_far < apart_inside / 10, (apart_far, apart_inside)
    # in place: the crop plus context, outside the feathered selection byte-identical
    outside = soft_mask(mask, 0, 4) == 0
    for raster in result.rasters:
        placed = composite_over(layer, raster_to_array(raster), tuple(result.info["offset"]))
        assert np.array_equal(placed[outside], layer[outside])
        assert (placed[mask > 0] != layer[mask > 0]).any()


def test_kontext_on_the_whole_layer_runs_the_plain_edit_pipeline(
        make_context: Callable[..., Any], pipeline_calls: list[Call]) -> None:
    rasters = [array_to_raster(_layer(), Layout.RGBA8)]
    result = edit.run(make_context({**FAST, "seed": 7}, rasters, "flux-kontext"))
    assert [name for name, _, _ in pipeline_calls] == ["FluxKontextPipeline"]
    assert (result.rasters[0].width, result.rasters[0].height) == (WIDTH, HEIGHT)
