"""The generate and expand tasks end to end on tiny real pipelines (SDXL, SD 1.5, FLUX; SDXL
inpaint and FLUX Fill for expand), loaded through the real loader; generate with controls and
image prompts too."""

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
from sfumato.core.tasks import expand, generate

# the tiny model store and provider, and the tiny ControlNets and IP-Adapters beside them
pytest_plugins = ["tests.support.tiny_fixtures", "tests.support.guide_fixtures"]

pytestmark = pytest.mark.integration

FAST = {"steps": 2, "resolution": 256, "prompt": "a lighthouse"}
HEIGHT, WIDTH = 90, 150


def _layer(seed: int = 0) -> np.ndarray:
    layer = np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, 4), dtype=np.uint8)
    layer[..., 3] = 255
    return layer


def _mask() -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[20:60, 30:130] = 255  # wide: 100 x 40
    return mask


def _generate(make_context: Callable[..., Any], params: dict[str, Any], rasters: list[Any],
              model: str) -> Any:
    return generate.run(make_context({**FAST, **params}, rasters, model))


@pytest.fixture
def model_sizes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The (width, height) each pipeline call worked at."""
    seen: list[tuple[int, int]] = []
    real = repaint_module.generate

    def spy(pipe: Any, image: np.ndarray, *args: Any, **kwargs: Any) -> np.ndarray:
        seen.append((image.shape[1], image.shape[0]))
        return real(pipe, image, *args, **kwargs)

    monkeypatch.setattr(repaint_module, "generate", spy)
    return seen


@pytest.mark.parametrize("model", ["sdxl", "sd15", "flux"])
def test_generate_into_the_selection_at_native_size_and_the_selections_aspect(
        make_context: Callable[..., Any], model_sizes: list[tuple[int, int]],
        model: str) -> None:
    layer, mask = _layer(), _mask()
    params = {"seed": 5, "feather": 4}
    result = _generate(make_context, params,
                       [array_to_raster(layer, Layout.RGBA8), array_to_raster(mask, Layout.GRAY8)],
                       model)
    (raster,) = result.rasters
    x, y = result.info["offset"]
    # the selection's box plus the feather's reach (4), widened to the model's multiple
    assert x <= 26 and y <= 16 and x + raster.width >= 134 and y + raster.height >= 64
    assert raster.width < WIDTH and raster.height < HEIGHT
    (size,) = model_sizes  # one call, at about the model's native area, the box's aspect
    assert 0.7 * 256 * 256 <= size[0] * size[1] <= 1.3 * 256 * 256
    assert abs(size[0] / size[1] - raster.width / raster.height) < 0.25
    pixels = raster_to_array(raster)
    soft = soft_mask(mask, 0, 4)[y:y + raster.height, x:x + raster.width]
    assert (pixels[..., 3][soft == 1.0] == 255).all()  # opaque where selected
    assert (pixels[..., 3][soft == 0] == 0).all()  # nothing outside the feathered selection
    placed = composite_over(layer, pixels, (x, y))
    outside = soft_mask(mask, 0, 4) == 0
    assert np.array_equal(placed[outside], layer[outside])
    assert result.info["names"] == ["Generate: a lighthouse (seed 5)"]
    assert result.info["seeds"] == [5] and result.info["model"] == model


def test_generate_without_a_selection_covers_the_whole_area_opaque(
        make_context: Callable[..., Any]) -> None:
    blank = np.zeros((HEIGHT, WIDTH, 4), np.uint8)
    result = _generate(make_context, {"seed": 1}, [array_to_raster(blank, Layout.RGBA8)], "sdxl")
    (raster,) = result.rasters
    assert (raster.width, raster.height) == (WIDTH, HEIGHT) and result.info["offset"] == [0, 0]
    pixels = raster_to_array(raster)
    assert (pixels[..., 3] == 255).all() and pixels[..., :3].std() > 0


def test_generate_seeds_repeat_and_variants_are_one_layer_per_seed(
        make_context: Callable[..., Any]) -> None:
    rasters = [array_to_raster(_layer(), Layout.RGBA8)]
    first = _generate(make_context, {"seed": 42}, rasters, "sd15")
    again = _generate(make_context, {"seed": 42}, rasters, "sd15")
    assert bytes(first.rasters[0].data) == bytes(again.rasters[0].data)
    two = _generate(make_context, {"seed": 41, "variants": 2}, rasters, "sd15")
    assert two.info["seeds"] == [41, 42] and len(two.rasters) == 2
    assert bytes(two.rasters[1].data) == bytes(first.rasters[0].data)
    assert bytes(two.rasters[0].data) != bytes(first.rasters[0].data)


@pytest.mark.parametrize(("task", "model", "params", "wanted"), [
    (generate, "sdxl-inpaint", {}, "flux or sd15 or sdxl model"),
    (expand, "flux", {"right": 16}, "flux-fill or sd15-inpaint or sdxl or sdxl-inpaint model"),
])
def test_a_model_of_the_wrong_kind_is_refused_naming_the_kinds_that_fit(
        make_context: Callable[..., Any], task: Any, model: str, params: dict[str, Any],
        wanted: str) -> None:
    rasters = [array_to_raster(_layer(), Layout.RGBA8)]
    with pytest.raises(SfumatoError) as caught:
        task.run(make_context({**FAST, **params}, rasters, model))
    assert caught.value.code is ErrorCode.WRONG_MODEL_KIND
    assert wanted in caught.value.message and repr(model) in caught.value.message


@pytest.mark.parametrize("model", ["sdxl-inpaint", "flux-fill"])
def test_expand_fills_the_new_border_and_blends_the_seam_only(
        make_context: Callable[..., Any], model: str) -> None:
    layer = _layer()
    sides = {"left": 24, "top": 0, "right": 40, "bottom": 8}
    params = {**FAST, **sides, "seed": 2, "feather": 8, "context": 32}
    result = expand.run(make_context(params, [array_to_raster(layer, Layout.RGBA8)], model))
    (raster,) = result.rasters
    x, y = result.info["offset"]  # in the sent raster's pixels: the border lies before it
    grown_w, grown_h = WIDTH + 24 + 40, HEIGHT + 8
    grown = np.zeros((grown_h, grown_w, 4), np.uint8)
    grown[0:HEIGHT, 24:24 + WIDTH] = layer
    placed = composite_over(grown, raster_to_array(raster), (x + 24, y))
    border = np.ones((grown_h, grown_w), bool)
    border[0:HEIGHT, 24:24 + WIDTH] = False
    assert (placed[..., 3][border] == 255).all()  # every new pixel painted, opaque
    # the picture is kept exactly beyond the seam's feather (8 px inside the old edge)
    inner = np.zeros_like(border)
    inner[0:HEIGHT - 8, 24 + 8:24 + WIDTH - 8] = True
    assert np.array_equal(placed[inner], grown[inner])
    assert (placed[~border] != grown[~border]).any()  # and the seam was blended
    assert result.info["names"] == ["Expand: a lighthouse (seed 2)"]


def test_expand_refuses_to_add_nothing(make_context: Callable[..., Any]) -> None:
    with pytest.raises(SfumatoError) as caught:
        expand.run(make_context(FAST, [array_to_raster(_layer(), Layout.RGBA8)], "sdxl-inpaint"))
    assert caught.value.code is ErrorCode.BAD_PARAMS and "at least one of" in caught.value.message


def _edges() -> np.ndarray:
    """A picture with strong edges under the area: what an "auto" control is made of."""
    layer = np.zeros((HEIGHT, WIDTH, 4), np.uint8)
    layer[..., 3] = 255
    layer[20:70, 40:110, :3] = (220, 40, 40)
    return layer


@pytest.mark.parametrize(("model", "guides"), [
    ("sdxl", {"controls": [{"kind": "canny"}]}),
    ("sdxl", {"image_prompts": [{"image": 1, "weight": 1.0}]}),
    ("flux", {"controls": [{"kind": "canny"}]}),  # FluxControlNetPipeline, around FLUX's parts
])
def test_generate_follows_controls_and_image_prompts(guided_context: Callable[..., Any],
                                                      model: str, guides: dict[str, Any]
                                                      ) -> None:
    rasters = [array_to_raster(_edges(), Layout.RGBA8)]
    if "image_prompts" in guides:
        rasters.append(array_to_raster(_layer(3), Layout.RGBA8))
    params = {**FAST, "seed": 3, "resolution": 128}
    plain = generate.run(guided_context(params, rasters[:1], model))
    guided = generate.run(guided_context({**params, **guides}, rasters, model))
    assert guided.info["offset"] == plain.info["offset"] == [0, 0]
    assert (guided.rasters[0].width, guided.rasters[0].height) == (WIDTH, HEIGHT)
    assert bytes(guided.rasters[0].data) != bytes(plain.rasters[0].data)
