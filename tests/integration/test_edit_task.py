"""The edit task (edit by instruction) end to end on tiny real pipelines loaded through the real
loader: InstructPix2Pix (SD 1.5 and SDXL) and FLUX.1 Kontext. What an artist would notice:
the result lands exactly where the source is (odd sizes, odd offsets, selections on the
canvas edge), nothing outside the selection changes, seeds repeat, a model that cannot edit
is refused naming the kinds that can."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.raster import Layout
from sfumato.core.diffusion import repaint as repaint_module
from sfumato.core.errors import SfumatoError
from sfumato.core.pixels.arrays import array_to_raster, raster_to_array
from sfumato.core.pixels.compose import composite_over
from sfumato.core.pixels.masks import soft_mask
from sfumato.core.tasks import edit, generate

pytest_plugins = ["tests.support.tiny_fixtures"]

pytestmark = pytest.mark.integration

FAST = {"steps": 2, "resolution": 256, "instruction": "make it night"}
EDIT_MODELS = ["instruct-pix2pix", "sdxl-instruct-pix2pix", "flux-kontext", "flux2-klein"]
HEIGHT, WIDTH = 61, 97  # odd on purpose: no side is a multiple of 8 or 16


def _layer(seed: int = 0) -> np.ndarray:
    layer = np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, 4), dtype=np.uint8)
    layer[..., 3] = 255
    return layer


def _mask(x0: int = 33, y0: int = 17, x1: int = 70, y1: int = 44) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[y0:y1, x0:x1] = 255
    return mask


def _rasters(layer: np.ndarray, mask: np.ndarray | None = None) -> list[Any]:
    rasters = [array_to_raster(layer, Layout.RGBA8)]
    if mask is not None:
        rasters.append(array_to_raster(mask, Layout.GRAY8))
    return rasters


Size = tuple[int, int]


@pytest.fixture
def pipeline_sizes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Size, Size]]:
    """(asked, returned) (width, height) of each real pipeline call."""
    seen: list[tuple[Size, Size]] = []
    real = repaint_module.generate

    def spy(pipe: Any, image: np.ndarray, *args: Any, **kwargs: Any) -> np.ndarray:
        out = real(pipe, image, *args, **kwargs)
        seen.append(((image.shape[1], image.shape[0]), (out.shape[1], out.shape[0])))
        return out

    monkeypatch.setattr(repaint_module, "generate", spy)
    return seen


@pytest.mark.parametrize("model", EDIT_MODELS)
def test_edit_of_a_selection_changes_only_the_selection_and_lands_in_place(
        make_context: Callable[..., Any], pipeline_sizes: list[Any], model: str) -> None:
    layer, mask = _layer(), _mask(x0=33, y0=17, x1=WIDTH, y1=44)  # touches the right edge
    params = {**FAST, "seed": 7, "feather": 4, "context": 8}
    result = edit.run(make_context(params, _rasters(layer, mask), model))
    (raster,) = result.rasters
    x, y = result.info["offset"]
    # the selection's box plus the feather's reach (4) and context (8), inside the layer
    assert 0 <= x <= 33 - 4 and 0 <= y <= 17 - 4
    assert x + raster.width == WIDTH and y + raster.height >= 44 + 4
    # the real pipeline gave back exactly the size it was asked for (no zoom inside it)
    ((asked, returned),) = pipeline_sizes
    assert asked == returned
    pixels = raster_to_array(raster)
    placed = composite_over(layer, pixels, (x, y))
    outside = soft_mask(mask, 0, 4) == 0
    assert np.array_equal(placed[outside], layer[outside])  # byte-identical outside
    inside = mask > 0
    assert (placed[inside] != layer[inside]).any()  # and the model did change the selection
    assert result.info["names"] == ["Edit: make it night (seed 7)"]
    assert result.info["seeds"] == [7] and result.info["model"] == model


@pytest.mark.parametrize("model", ["instruct-pix2pix", "flux-kontext"])
def test_edit_without_a_selection_covers_the_layer_and_keeps_its_outline(
        make_context: Callable[..., Any], pipeline_sizes: list[Any], model: str) -> None:
    layer = _layer(1)
    layer[:, :20, 3] = 0  # a cut-out: the left strip is transparent
    result = edit.run(make_context({**FAST, "seed": 3}, _rasters(layer), model))
    (raster,) = result.rasters
    assert (raster.width, raster.height) == (WIDTH, HEIGHT) and result.info["offset"] == [0, 0]
    ((asked, returned),) = pipeline_sizes
    assert asked == returned
    multiple = 16 if model == "flux-kontext" else 8
    assert asked[0] % multiple == 0 and asked[1] % multiple == 0
    pixels = raster_to_array(raster)
    assert (pixels[:, :20, 3] == 0).all() and (pixels[:, 20:, 3] == 255).all()


def test_edit_seeds_repeat_and_variants_are_one_layer_per_seed(
        make_context: Callable[..., Any]) -> None:
    rasters = _rasters(_layer(2))
    first = edit.run(make_context({**FAST, "seed": 42}, rasters, "instruct-pix2pix"))
    again = edit.run(make_context({**FAST, "seed": 42}, rasters, "instruct-pix2pix"))
    assert bytes(first.rasters[0].data) == bytes(again.rasters[0].data)
    two = edit.run(make_context({**FAST, "seed": 41, "variants": 2}, rasters,
                                "instruct-pix2pix"))
    assert two.info["seeds"] == [41, 42] and len(two.rasters) == 2
    assert bytes(two.rasters[1].data) == bytes(first.rasters[0].data)
    assert bytes(two.rasters[0].data) != bytes(first.rasters[0].data)


def test_image_guidance_weighs_the_picture_in_instruct_pix2pix_and_is_reported_elsewhere(
        make_context: Callable[..., Any]) -> None:
    rasters = _rasters(_layer(4))
    low = edit.run(make_context({**FAST, "seed": 5, "image_guidance": 1.0}, rasters,
                                "instruct-pix2pix"))
    high = edit.run(make_context({**FAST, "seed": 5, "image_guidance": 4.0}, rasters,
                                 "instruct-pix2pix"))
    assert bytes(low.rasters[0].data) != bytes(high.rasters[0].data)
    assert low.info["warnings"] == []
    kontext = edit.run(make_context({**FAST, "seed": 5, "image_guidance": 4.0}, rasters,
                                    "flux-kontext"))
    assert any("image guidance" in w for w in kontext.info["warnings"])


@pytest.mark.parametrize(("task", "model", "wanted"), [
    (edit, "sdxl", "flux-kontext or flux2-klein or instruct-pix2pix or qwen-image-edit or "
     "qwen-image-edit-plus or sdxl-instruct-pix2pix model"),
    (generate, "flux-kontext", "flux or sd15 or sdxl model"),
])
def test_a_model_of_the_wrong_kind_is_refused_naming_the_kinds_that_fit(
        make_context: Callable[..., Any], task: Any, model: str, wanted: str) -> None:
    params = FAST if task is edit else {"prompt": "a lighthouse", "steps": 2}
    with pytest.raises(SfumatoError) as caught:
        task.run(make_context(params, _rasters(_layer()), model))
    assert caught.value.code is ErrorCode.WRONG_MODEL_KIND
    assert wanted in caught.value.message and repr(model) in caught.value.message


def test_an_empty_instruction_or_selection_is_refused_before_any_model_loads(
        make_context: Callable[..., Any]) -> None:
    with pytest.raises(SfumatoError) as caught:
        edit.run(make_context({**FAST, "instruction": "  "}, _rasters(_layer()), "nope"))
    assert caught.value.code is ErrorCode.BAD_PARAMS and "instruction" in caught.value.message
    empty = np.zeros((HEIGHT, WIDTH), np.uint8)
    with pytest.raises(SfumatoError) as caught:
        edit.run(make_context(FAST, _rasters(_layer(), empty), "nope"))
    assert caught.value.code is ErrorCode.EMPTY_SELECTION


# --- pixel alignment: a pass-through model must give the picture back, unshifted ------------


def _blobs(height: int, width: int, centres: list[tuple[float, float]],
           sigma: float = 5.0) -> np.ndarray:
    """Smooth round features (a picture a resampler cannot blur by more than a level) at
    sub-pixel `centres` (x, y)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    value = np.zeros((height, width))
    for cx, cy in centres:
        value += np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma ** 2))
    rgba = np.empty((height, width, 4), np.uint8)
    grey = np.rint(30 + 200 * np.clip(value, 0, 1))
    rgba[..., 0], rgba[..., 1], rgba[..., 2] = grey, 255 - grey, grey // 2 + 40
    rgba[..., 3] = 255
    return rgba


def _shift(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(dx, dy) that moves `a` onto `b`: the peak of their cross-correlation, fitted to a
    sub-pixel by a Gaussian through it and its neighbours on each axis. (Whitened, phase
    correlation reads 8-bit, non-periodic crops too noisily to see a tenth of a pixel.)"""
    fa, fb = np.fft.fft2(a - a.mean()), np.fft.fft2(b - b.mean())
    surface = np.fft.ifft2(fb * np.conj(fa)).real
    py, px = np.unravel_index(int(np.argmax(surface)), surface.shape)
    h, w = surface.shape

    def fit(minus: float, centre: float, plus: float) -> float:
        logs = [np.log(max(v, 1e-12)) for v in (minus, centre, plus)]
        denominator = logs[0] - 2 * logs[1] + logs[2]
        return 0.0 if denominator == 0 else 0.5 * (logs[0] - logs[2]) / denominator

    dx = px + fit(surface[py, (px - 1) % w], surface[py, px], surface[py, (px + 1) % w])
    dy = py + fit(surface[(py - 1) % h, px], surface[py, px], surface[(py + 1) % h, px])
    return (dx - w if dx > w / 2 else dx), (dy - h if dy > h / 2 else dy)


def test_the_shift_measure_sees_a_quarter_pixel() -> None:
    # the measure below must be able to fail: a feature moved by 0.25 px reads as moved
    a = _blobs(64, 96, [(40.0, 30.0)], sigma=6.0)[..., 0].astype(np.float64)
    b = _blobs(64, 96, [(40.25, 30.0)], sigma=6.0)[..., 0].astype(np.float64)
    dx, dy = _shift(a, b)
    assert 0.2 < dx < 0.3 and abs(dy) < 0.05
    dx, dy = _shift(a, _blobs(64, 96, [(40.0, 30.1)], sigma=6.0)[..., 0].astype(np.float64))
    assert abs(dx) < 0.05 and 0.05 < dy < 0.15


@pytest.mark.parametrize(("model", "size", "selection"), [
    ("instruct-pix2pix", (97, 61), (33, 17, 70, 44)),  # odd size, odd offset
    ("flux-kontext", (97, 61), (33, 17, 70, 44)),  # FLUX's 16-pixel multiple
    ("flux-kontext", (131, 75), (0, 9, 57, 75)),  # touching the left and bottom edges
    ("instruct-pix2pix", (131, 75), None),  # the whole layer
    ("flux2-klein", (97, 61), (33, 17, 70, 44)),  # the picture as a reference image
    ("qwen-image-edit", (131, 75), (0, 9, 57, 75)),  # its own 1 MP on a 32 grid, on the edges
])
def test_a_pass_through_model_gives_the_picture_back_unshifted(
        make_context: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, model: str,
        size: tuple[int, int], selection: tuple[int, int, int, int] | None) -> None:
    """The real pipeline runs (and must return the size it was asked for); then the model's
    output is replaced by its input, a model that changes nothing. Everything sfumato does
    around it (crop, context, the resize to the model's multiple, the way back, the paste)
    must then give back the source to within one level and with no sub-pixel shift."""
    real = repaint_module.generate
    asked: list[tuple[int, int]] = []

    def pass_through(pipe: Any, image: np.ndarray, *args: Any, **kwargs: Any) -> np.ndarray:
        out = real(pipe, image, *args, **kwargs)
        assert out.shape == image.shape  # the pipeline itself never resizes
        asked.append((image.shape[1], image.shape[0]))
        return image.copy()

    monkeypatch.setattr(repaint_module, "generate", pass_through)
    width, height = size
    layer = _blobs(height, width, [(41.3, 29.6), (width - 23.5, 31.2), (20.0, height - 14.7)])
    mask = None
    if selection is not None:
        x0, y0, x1, y1 = selection
        mask = np.zeros((height, width), np.uint8)
        mask[y0:y1, x0:x1] = 255
    params = {**FAST, "seed": 1, "feather": 0, "grow": 0, "context": 8, "resolution": 192}
    result = edit.run(make_context(params, _rasters(layer, mask), model))
    (raster,) = result.rasters
    (model_size,) = asked
    x, y = result.info["offset"]
    assert model_size != (raster.width, raster.height)  # a real resize happened both ways
    placed = composite_over(layer, raster_to_array(raster), (x, y))
    difference = np.abs(placed.astype(int) - layer.astype(int))
    assert difference.max() <= 1, difference.max()
    region = (slice(y, y + raster.height), slice(x, x + raster.width))
    dx, dy = _shift(layer[region][..., 0].astype(np.float64),
                    placed[region][..., 0].astype(np.float64))
    assert abs(dx) < 0.05 and abs(dy) < 0.05, (dx, dy)
