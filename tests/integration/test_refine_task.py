"""The refine task end to end on tiny real pipelines, loaded through the real loader."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.raster import Layout
from sfumato.core.errors import JobCancelled, SfumatoError
from sfumato.core.pixels.arrays import array_to_raster, raster_to_array
from sfumato.core.pixels.compose import composite_over
from sfumato.core.pixels.masks import soft_mask
from sfumato.core.task_api import CancelToken
from sfumato.core.tasks import refine

pytest_plugins = ["tests.support.tiny_fixtures"]  # the tiny model store and provider fixtures

pytestmark = pytest.mark.integration

FAST = {"steps": 2, "resolution": 256, "strength": 0.6}
HEIGHT, WIDTH = 96, 128


def _layer(dtype: type = np.uint8) -> np.ndarray:
    rng = np.random.default_rng(5)
    top = np.iinfo(dtype).max
    layer = rng.integers(0, top + 1, (HEIGHT, WIDTH, 4), dtype=dtype)
    layer[..., 3] = top
    layer[:, :20, 3] = 0  # a cut-out: the left strip is transparent
    return layer


def _mask() -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[30:60, 40:90] = 255
    return mask


def _run(make_context: Callable[..., Any], params: dict[str, Any], rasters: list[Any],
         model: str | None = "sdxl", **extra: Any) -> Any:
    return refine.run(make_context({**FAST, **params}, rasters, model, **extra))


@pytest.mark.parametrize("model", ["sdxl", "sdxl-inpaint", "sd15", "sd15-inpaint", "flux",
                                   "flux-fill"])
def test_refine_without_a_selection_redraws_the_whole_layer_keeping_its_outline(
    make_context: Callable[..., Any], model: str
) -> None:
    layer = _layer()
    result = _run(make_context, {"seed": 2, "prompt": "oil paint"},
                  [array_to_raster(layer, Layout.RGBA8)], model)
    raster = result.rasters[0]
    assert (raster.width, raster.height) == (WIDTH, HEIGHT)
    assert result.info["offset"] == [0, 0]
    assert result.info["name"] == "Refine: oil paint (seed 2)"
    pixels = raster_to_array(raster)
    assert np.all(pixels[:, :20, 3] == 0)  # the transparent strip stays transparent
    assert np.all(pixels[:, 20:, 3] == 255)
    assert np.abs(pixels[:, 20:, :3].astype(int) - layer[:, 20:, :3]).max() > 0


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_refine_with_a_selection_leaves_everything_outside_it_bit_identical(
    make_context: Callable[..., Any], dtype: type
) -> None:
    layer = _layer(dtype)
    layout = Layout.RGBA8 if dtype == np.uint8 else Layout.RGBA16
    params = {"seed": 9, "grow": 2, "feather": 6, "context": 8}
    result = _run(make_context, params,
                  [array_to_raster(layer, layout), array_to_raster(_mask(), Layout.GRAY8)])
    pixels = raster_to_array(result.rasters[0])
    assert pixels.dtype == dtype
    placed = composite_over(layer, pixels, tuple(result.info["offset"]))
    soft = soft_mask(_mask(), 2, 6)
    diff = np.abs(placed.astype(np.int64) - layer.astype(np.int64))
    assert diff[soft == 0].max() == 0
    assert diff[soft == 1].max() > 0


def test_strength_zero_hands_the_pixels_back_without_running_a_model(
    make_context: Callable[..., Any], tiny_provider: Any
) -> None:
    class NoLoading:
        def entry(self, *args: Any, **kwargs: Any) -> Any:
            return tiny_provider.entry(*args, **kwargs)

        def load_pipeline(self, *args: Any) -> Any:
            raise AssertionError("strength 0 must not load a model")

    layer = _layer()
    raster = array_to_raster(layer, Layout.RGBA8)
    result = _run(make_context, {"strength": 0, "variants": 2}, [raster],
                  "flux", models=NoLoading())
    assert [bytes(r.data) for r in result.rasters] == [bytes(raster.data)] * 2
    assert result.info["offset"] == [0, 0] and len(result.info["seeds"]) == 2


def test_low_strength_still_runs_a_step_and_seeds_repeat(
    make_context: Callable[..., Any],
) -> None:
    events: list[tuple[int, int, str]] = []
    rasters = [array_to_raster(_layer(), Layout.RGBA8)]
    first = _run(make_context, {"seed": 4, "strength": 0.1}, rasters,
                 progress=lambda *event: events.append(event))
    again = _run(make_context, {"seed": 4, "strength": 0.1}, rasters)
    assert bytes(first.rasters[0].data) == bytes(again.rasters[0].data)
    assert events == [(1, 1, "denoise")]


def test_cancel_stops_at_the_step_boundary(make_context: Callable[..., Any]) -> None:
    steps: list[int] = []

    class AfterFirstStep:
        def is_set(self) -> bool:
            return bool(steps)

    with pytest.raises(JobCancelled):
        _run(make_context, {"seed": 1, "steps": 6, "strength": 1.0},
             [array_to_raster(_layer(), Layout.RGBA8)],
             progress=lambda step, total, stage: steps.append(step),
             cancel=CancelToken(AfterFirstStep()))
    assert steps == [1]


def test_refine_refusals_are_typed(make_context: Callable[..., Any]) -> None:
    layer = array_to_raster(_layer(), Layout.RGBA8)
    mask = array_to_raster(_mask(), Layout.GRAY8)
    empty = array_to_raster(np.zeros((HEIGHT, WIDTH), np.uint8), Layout.GRAY8)
    small = array_to_raster(np.zeros((HEIGHT, 3), np.uint8), Layout.GRAY8)
    cases = [
        ({"strength": None}, [layer], "sdxl", ErrorCode.BAD_PARAMS),
        ({"strength": -0.1}, [layer], "sdxl", ErrorCode.BAD_PARAMS),
        ({}, [layer, empty], "sdxl", ErrorCode.EMPTY_SELECTION),
        ({}, [layer, small], "sdxl", ErrorCode.BAD_PARAMS),
        ({}, [layer, mask], "no-such-model", ErrorCode.UNKNOWN_MODEL),
        ({"strength": 0}, [layer], "no-such-model", ErrorCode.UNKNOWN_MODEL),
    ]
    for params, rasters, model, code in cases:
        with pytest.raises(SfumatoError) as caught:
            _run(make_context, params, rasters, model)
        assert caught.value.code is code, (params, caught.value)


def test_a_long_prompt_is_cut_with_a_warning(make_context: Callable[..., Any]) -> None:
    result = _run(make_context, {"seed": 1, "prompt": "pear " * 30,
                                 "negative_prompt": "blur " * 30},
                  [array_to_raster(_layer(), Layout.RGBA8)], "sd15")
    warnings = result.info["warnings"]
    assert len(warnings) == 2 and "negative prompt" in warnings[1]
