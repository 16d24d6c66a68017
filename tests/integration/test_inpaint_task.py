"""The inpaint task end to end on tiny real pipelines, loaded through the real loader."""

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
from sfumato.core.tasks import inpaint

pytest_plugins = ["tests.support.tiny_fixtures"]  # the tiny model store and provider fixtures

pytestmark = pytest.mark.integration

FAST = {"steps": 2, "resolution": 256}
HEIGHT, WIDTH = 120, 160


def _layer(dtype: type = np.uint8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    layer = rng.integers(0, top + 1, (HEIGHT, WIDTH, 4), dtype=dtype)
    layer[..., 3] = top
    layer[:10, :10, 3] = 0  # a transparent corner, far from the selection
    return layer


def _mask() -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[40:80, 60:110] = 255
    mask[82:86, 60:70] = 120  # partly selected
    return mask


def _run(make_context: Callable[..., Any], params: dict[str, Any], rasters: list[Any],
         model: str | None = "sdxl-inpaint", **extra: Any) -> Any:
    return inpaint.run(make_context({**FAST, **params}, rasters, model, **extra))


def _inputs(layer: np.ndarray, mask: np.ndarray, layout: Layout = Layout.RGBA8) -> list[Any]:
    return [array_to_raster(layer, layout), array_to_raster(mask, Layout.GRAY8)]


def _assert_untouched_outside_soft_mask(layer: np.ndarray, result: Any,
                                        params: dict[str, Any]) -> None:
    pixels = raster_to_array(result.rasters[0])
    placed = composite_over(layer, pixels, tuple(result.info["offset"]))
    soft = soft_mask(_mask(), params.get("grow", 4), params.get("feather", 16))
    outside = soft == 0
    diff = np.abs(placed.astype(np.int64) - layer.astype(np.int64))
    assert diff[outside].max() == 0  # bit-identical outside the feathered selection
    assert diff[soft == 1.0].max() > 0  # and the selection was repainted


@pytest.mark.parametrize("model", ["sdxl-inpaint", "sdxl", "sd15-inpaint", "flux-fill"])
def test_inpaint_returns_a_layer_over_the_selection_only(
    make_context: Callable[..., Any], model: str
) -> None:
    layer, mask = _layer(), _mask()
    params = {"prompt": "a red apple", "seed": 3, "context": 16}
    result = _run(make_context, params, _inputs(layer, mask), model)
    assert len(result.rasters) == 1
    raster = result.rasters[0]
    assert raster.layout is Layout.RGBA8
    crop_x, crop_y = result.info["offset"]  # in the sent raster's pixels
    # the selection's box plus grow + feather reach (4 + 16) plus context 16, inside the layer
    assert 0 <= crop_x <= 60 - 36 and 0 <= crop_y <= 40 - 36
    assert crop_x + raster.width >= 110 + 36 or crop_x + raster.width == WIDTH
    assert raster.width < WIDTH or raster.height < HEIGHT  # not the whole layer
    assert result.info["seed"] == 3 and result.info["seeds"] == [3]
    assert result.info["name"] == "Inpaint: a red apple (seed 3)"
    assert result.info["warnings"] == []
    _assert_untouched_outside_soft_mask(layer, result, params)


def test_sixteen_bit_and_bgra_layers_come_back_in_their_layout(
    make_context: Callable[..., Any],
) -> None:
    layer16 = _layer(np.uint16)
    result = _run(make_context, {"seed": 1}, _inputs(layer16, _mask(), Layout.RGBA16))
    assert result.rasters[0].layout is Layout.RGBA16
    _assert_untouched_outside_soft_mask(layer16, result, {})

    layer8 = _layer()
    bgra = _run(make_context, {"seed": 1}, _inputs(layer8, _mask(), Layout.BGRA8))
    rgba = _run(make_context, {"seed": 1}, _inputs(layer8, _mask()))
    assert bgra.rasters[0].layout is Layout.BGRA8
    assert np.array_equal(raster_to_array(bgra.rasters[0]), raster_to_array(rgba.rasters[0]))


def test_seeds_repeat_and_variants_are_one_layer_per_seed(
    make_context: Callable[..., Any],
) -> None:
    inputs = _inputs(_layer(), _mask())
    first = _run(make_context, {"seed": 42}, inputs)
    again = _run(make_context, {"seed": 42}, inputs)
    assert bytes(first.rasters[0].data) == bytes(again.rasters[0].data)
    two = _run(make_context, {"seed": 41, "variants": 2}, inputs)
    assert two.info["seeds"] == [41, 42] and len(two.rasters) == 2
    assert bytes(two.rasters[1].data) == bytes(first.rasters[0].data)
    assert bytes(two.rasters[0].data) != bytes(first.rasters[0].data)
    assert len(two.info["names"]) == 2

    unseeded = _run(make_context, {}, inputs)
    assert isinstance(unseeded.info["seed"], int) and 0 <= unseeded.info["seed"] < 2**32


def test_progress_runs_to_the_total_and_cancel_stops_within_a_step(
    make_context: Callable[..., Any],
) -> None:
    events: list[tuple[int, int, str]] = []
    _run(make_context, {"seed": 1, "variants": 2}, _inputs(_layer(), _mask()),
         progress=lambda step, total, stage: events.append((step, total, stage)))
    assert [e[0] for e in events] == [1, 2, 3, 4] and {e[1] for e in events} == {4}

    class AfterFirstStep:
        def is_set(self) -> bool:
            return len(steps) >= 1

    steps: list[int] = []
    with pytest.raises(JobCancelled):
        _run(make_context, {"seed": 1, "steps": 5}, _inputs(_layer(), _mask()),
             progress=lambda step, total, stage: steps.append(step),
             cancel=CancelToken(AfterFirstStep()))
    assert steps == [1]  # the step that was running finished; no other began


def test_a_prompt_longer_than_the_text_encoder_reads_is_cut_with_a_warning(
    make_context: Callable[..., Any],
) -> None:
    prompt = " ".join(["apple"] * 40)  # 200 character tokens with the tiny tokenizer
    result = _run(make_context, {"seed": 1, "prompt": prompt}, _inputs(_layer(), _mask()))
    assert len(result.info["warnings"]) == 1 and "75" in result.info["warnings"][0]
    assert len(result.rasters) == 1
    flux = _run(make_context, {"seed": 1, "prompt": prompt}, _inputs(_layer(), _mask()),
                "flux-fill")
    assert flux.info["warnings"] == []  # T5 reads 512 tokens
    ignored = _run(make_context, {"seed": 1, "negative_prompt": "blur"},
                   _inputs(_layer(), _mask()), "flux-fill")
    assert ignored.info["warnings"] == ["FLUX models do not use a negative prompt; it was ignored"]


@pytest.mark.parametrize("model", ["sdxl-inpaint", "flux-fill"])
def test_previews_are_small_rgba_pictures_of_the_latents(
    make_context: Callable[..., Any], model: str
) -> None:
    previews: list[tuple[Any, int]] = []
    _run(make_context, {"seed": 1, "steps": 5}, _inputs(_layer(), _mask()), model,
         preview=lambda raster, step: previews.append((raster, step)))
    assert [step for _, step in previews] == [4]  # every 4th step, never on the last
    raster = previews[0][0]
    assert raster.layout is Layout.RGBA8 and 0 < max(raster.width, raster.height) <= 256


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({"steps": 0}, "steps"),
        ({"steps": "many"}, "steps"),
        ({"strength": 1.5}, "strength"),
        ({"variants": 0}, "variants"),
        ({"seed": -2}, "seed"),
        ({"seed": 2**32}, "seed"),
        ({"steps": 4.0}, "steps"),
        ({"seed": True}, "seed"),
        ({"grow": -2}, "grow"),
        ({"prompt": 7}, "prompt"),
        ({"origin": [1]}, "origin"),  # a parameter no task takes: refused by name
        ({"guidance": float("nan")}, "guidance"),
    ],
)
def test_bad_params_are_refused_with_what_to_send(
    make_context: Callable[..., Any], params: dict[str, Any], word: str
) -> None:
    with pytest.raises(SfumatoError) as caught:
        _run(make_context, params, _inputs(_layer(), _mask()))
    assert caught.value.code is ErrorCode.BAD_PARAMS and word in caught.value.message


def test_inputs_that_cannot_be_inpainted_are_refused_typed(
    make_context: Callable[..., Any],
) -> None:
    layer, mask = _layer(), _mask()
    cases = [
        ([array_to_raster(layer, Layout.RGBA8), array_to_raster(mask[:, :-1], Layout.GRAY8)],
         "sdxl-inpaint", ErrorCode.BAD_PARAMS),
        ([array_to_raster(layer, Layout.RGBA8)], "sdxl-inpaint", ErrorCode.BAD_PARAMS),
        (_inputs(layer, np.zeros_like(mask)), "sdxl-inpaint", ErrorCode.EMPTY_SELECTION),
        ([array_to_raster(layer.astype(np.float32) / 255, Layout.RGBAF32),
          array_to_raster(mask, Layout.GRAY8)], "sdxl-inpaint", ErrorCode.UNSUPPORTED_LAYOUT),
        ([array_to_raster(layer, Layout.RGBA8), array_to_raster(layer, Layout.RGBA8)],
         "sdxl-inpaint", ErrorCode.UNSUPPORTED_LAYOUT),
        (_inputs(layer, mask), None, ErrorCode.BAD_PARAMS),
        (_inputs(layer, mask), "no-such-model", ErrorCode.UNKNOWN_MODEL),
        (_inputs(layer, mask), "flux", ErrorCode.WRONG_MODEL_KIND),
    ]
    for rasters, model, code in cases:
        with pytest.raises(SfumatoError) as caught:
            _run(make_context, {"seed": 1}, rasters, model)
        assert caught.value.code is code, (model, caught.value)
        assert caught.value.message
