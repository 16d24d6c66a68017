"""Diffusion super-resolution (`upscale --refine MODEL`): the upscale reworked in overlapping
tiles by a tiny random-weight SD 1.5 pipeline, loaded through the real loader."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sfumato.core.diffusion import tiled_refine
from sfumato.core.diffusion.tiled_refine import RefineSettings, plan_tiles, refine_tiled
from sfumato.core.errors import JobCancelled
from sfumato.core.task_api import CancelToken

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.support.tiny_fixtures"]  # the tiny model store and provider fixtures

DATA = Path(__file__).resolve().parents[1] / "data"
HEIGHT, WIDTH = 96, 128
TILE = 64  # 3 x 2 tiles overlapping by 8 px over 128 x 96


def _image(dtype: type = np.uint8) -> np.ndarray:
    photo = np.asarray(Image.open(DATA / "photo.png").convert("RGB").resize((WIDTH, HEIGHT)))
    top = np.iinfo(dtype).max
    rgb = photo.astype(np.float64) / 255 * top
    alpha = np.full((HEIGHT, WIDTH, 1), top, np.float64)
    alpha[:, :10] = 0  # a transparent strip: the refine keeps it
    return np.rint(np.concatenate([rgb, alpha], axis=2)).astype(dtype)


def _refine(pipe: Any, image: np.ndarray, tile: int | None = TILE, seed: int = 5,
            strength: float = 0.5, events: list[tuple[int, int, str]] | None = None,
            cancel: CancelToken | None = None) -> np.ndarray:
    return refine_tiled(pipe, image, RefineSettings("a photo", strength, 2, seed, tile),
                        guides=None,
                        progress=lambda *e: events.append(e) if events is not None else None,
                        cancel=cancel or CancelToken())


@pytest.fixture(scope="module")
def pipe(tiny_provider: Any) -> Any:
    return tiny_provider.load_pipeline(tiny_provider.entry("sd15", frozenset({"sd15"}), None),
                                       "refine")


def test_tiles_cover_the_image_with_the_overlap_asked() -> None:
    tiles = plan_tiles(WIDTH, HEIGHT, TILE, 8)
    assert len(tiles) == 6 and all((t.width, t.height) == (TILE, TILE) for t in tiles)
    covered = np.zeros((HEIGHT, WIDTH), int)
    for tile in tiles:
        covered[tile.slices] += 1
    assert covered.min() >= 1
    assert plan_tiles(40, 30, TILE, 8) == [plan_tiles(40, 30, TILE, 8)[0]]  # one small tile


def test_tiles_are_blended_so_no_seam_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    # What the blend must hide: tiles that come back differently (here each tile brighter or
    # darker by 30 levels, as a model's colour drift would make them). Cut hard, a seam
    # would jump 30 levels; blended over the shared bands it is a ramp of about a level a
    # pixel. (The model is not what this test is about: the tile's repaint is stubbed.)
    def drifting(pipe: Any, crop: np.ndarray, seed: int, *args: Any,
                 **kwargs: Any) -> np.ndarray:
        shifted = crop[..., :3] + (30.0 * (seed % 2) - 15)
        return np.clip(shifted / 255, 0, 1).astype(np.float32)

    monkeypatch.setattr(tiled_refine, "refine_tile", drifting)
    image = _image()
    image[..., :3] = np.clip(image[..., :3], 20, 235)  # no clipping hides a step
    result = _refine(object(), image, seed=0)
    change = result[..., :3].astype(int) - image[..., :3].astype(int)
    assert np.abs(change).max() >= 14  # the tiles' drift is there ...
    for axis in (0, 1):  # ... and never steps by more than a couple of levels a pixel
        assert np.abs(np.diff(change, axis=axis)).max() <= 2
    assert np.array_equal(result[..., 3], image[..., 3])  # alpha exactly as upscaled


def test_a_real_model_reworks_every_tile(pipe: Any) -> None:
    image = _image()
    tiled = _refine(pipe, image)
    assert tiled.shape == image.shape and tiled.dtype == image.dtype
    opaque = image[..., 3] > 0
    for tile in plan_tiles(WIDTH, HEIGHT, TILE, 8):
        inside = opaque[tile.slices]
        assert not np.array_equal(tiled[tile.slices][inside], image[tile.slices][inside])
    assert np.array_equal(tiled[..., 3], image[..., 3])


def test_strength_zero_keeps_the_upscale_and_seeds_repeat(pipe: Any) -> None:
    image = _image(np.uint16)
    assert np.array_equal(_refine(pipe, image, strength=0.0), image)
    whole = max(WIDTH, HEIGHT)  # one tile: the seed is all this is about
    first, again = _refine(pipe, image, whole, seed=9), _refine(pipe, image, whole, seed=9)
    assert first.dtype == np.uint16 and np.array_equal(first, again)
    assert not np.array_equal(first, _refine(pipe, image, whole, seed=10))


def test_progress_counts_every_tile_and_step_and_cancel_stops_within_a_step(
        pipe: Any) -> None:
    events: list[tuple[int, int, str]] = []
    _refine(pipe, _image(), events=events)
    total = events[-1][1]
    assert events[0] == (0, total, "refine in 6 tiles of 64²")  # the plan, before any step
    assert total == 6 and [e[0] for e in events[1:]] == list(range(1, total + 1))  # 2 x 0.5
    assert events[1][2] == "refine tile 1/6" and events[-1][2] == "refine tile 6/6"

    class AfterThree:
        def __init__(self) -> None:
            self.asked = 0

        def is_set(self) -> bool:
            self.asked += 1
            return self.asked > 2

    seen: list[tuple[int, int, str]] = []
    with pytest.raises(JobCancelled):
        _refine(pipe, _image(), events=seen, cancel=CancelToken(AfterThree()))
    assert 1 <= len(seen) - 1 <= 2  # stopped in the second tile, not after all six


def test_a_pass_that_runs_out_of_memory_starts_again_in_smaller_tiles(
        pipe: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    photo = Image.open(DATA / "photo.png").convert("RGBA").resize((600, 400))
    image = np.asarray(photo).copy()
    real_tile = tiled_refine.refine_tile
    sides: list[int] = []

    def small_device(pipe: Any, crop: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        sides.append(max(crop.shape[:2]))  # the device: no room for a tile above 300 px
        if max(crop.shape[:2]) > 300:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_tile(pipe, crop, *args, **kwargs)

    monkeypatch.setattr(tiled_refine, "refine_tile", small_device)
    monkeypatch.setattr(tiled_refine, "free_bytes", lambda device: 1 << 50)  # says it fits
    events: list[tuple[int, int, str]] = []
    settings = RefineSettings("a photo", 0.5, 2, 5, 512)
    refined, shrunk = tiled_refine.refine_fitting(
        pipe, image, settings, guides=None, progress=lambda *e: events.append(e),
        cancel=CancelToken())
    assert shrunk == 288  # 512 -> 384 -> 288: a quarter smaller each time it ran out
    assert sides[0] == 512 and 384 in sides and max(sides[-6:]) <= 300
    assert any("out of memory" in stage for *_, stage in events)
    # the same picture as a plan of 288² tiles from the start
    direct = refine_tiled(pipe, image, RefineSettings("a photo", 0.5, 2, 5, 288), guides=None,
                          progress=lambda *_: None, cancel=CancelToken())
    assert np.array_equal(refined, direct)

    def no_room(pipe: Any, crop: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(tiled_refine, "refine_tile", no_room)
    with pytest.raises(torch.OutOfMemoryError):  # below the smallest tile: the worker's
        tiled_refine.refine_fitting(pipe, image, settings, guides=None,  # own fallback
                                    progress=lambda *_: None, cancel=CancelToken())


@pytest.fixture(scope="module")
def tile_provider(tiny_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The tiny SD 1.5 beside a tiny tile ControlNet of its family and a tiny x2 GAN
    upscaler, all via `models add`."""
    import torch
    from sfumato.core.config import Settings
    from sfumato.core.models.model_add import register_model
    from sfumato.core.models.provider import WorkerModels
    from sfumato.core.models.registry import Registry

    from tests.support.tiny_models import build_tiny_controlnet
    from tests.support.tiny_upscaler import build_tiny_upscaler

    home = tmp_path_factory.mktemp("tile-home")
    registry = Registry(home)
    register_model(registry, "sd15", tiny_home / "models" / "diffusers" / "sd15")
    register_model(registry, "tile-sd15", build_tiny_controlnet("sd15", home / "tile-sd15"))
    register_model(registry, "tiny-x2", build_tiny_upscaler(home / "tiny-x2.safetensors"))
    torch.set_num_threads(1)
    return WorkerModels(Settings(home=home, endpoint="tcp://127.0.0.1:0"), "cpu")


def test_a_tile_controlnet_of_the_family_guides_every_tile(tile_provider: Any) -> None:
    pipe = tile_provider.load_pipeline(tile_provider.entry("sd15", frozenset({"sd15"}), None),
                                       "refine")
    guides, warnings = tiled_refine.tile_guides(tile_provider, pipe)
    assert guides is not None and warnings == []
    image = _image()
    settings = RefineSettings("a photo", 0.5, 2, 5, TILE)
    guided = refine_tiled(pipe, image, settings, guides=guides, progress=lambda *_: None,
                          cancel=CancelToken())
    plain = _refine(pipe, image)
    assert guided.shape == image.shape and np.array_equal(guided[..., 3], image[..., 3])
    for tile in plan_tiles(WIDTH, HEIGHT, TILE, 8):  # the control reached every tile
        assert not np.array_equal(guided[tile.slices], plain[tile.slices])


def test_the_tile_side_comes_from_free_memory_before_the_first_tile(
        pipe: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    photo = Image.open(DATA / "photo.png").convert("RGBA").resize((600, 400))
    image = np.asarray(photo).copy()
    real_tile = tiled_refine.refine_tile
    share = tiled_refine.MEMORY_SHARE["cpu"]
    room_for_384 = math.ceil(tiled_refine.tile_bytes(pipe, 384) / share)

    def refined_with(free: int, tile: int | None) -> tuple[set[int], list[str]]:
        """The tile sides the real refine ran, and its progress stages, with `free` bytes
        reported free (the one thing faked: the device's memory reading)."""
        readings: list[str] = []

        def reading(device: Any) -> int:
            readings.append(device.type)
            return free

        sides: set[int] = set()

        def spy(pipe: Any, crop: np.ndarray, *args: Any, **kwargs: Any) -> Any:
            sides.add(max(crop.shape[:2]))
            return real_tile(pipe, crop, *args, **kwargs)

        monkeypatch.setattr(tiled_refine, "free_bytes", reading)
        monkeypatch.setattr(tiled_refine, "refine_tile", spy)
        events: list[tuple[int, int, str]] = []
        _, shrunk = tiled_refine.refine_fitting(
            pipe, image, RefineSettings("a photo", 0.5, 2, 5, tile), guides=None,
            progress=lambda *e: events.append(e), cancel=CancelToken())
        assert readings == ["cpu"] and shrunk is None  # read once, before the first tile
        return sides, [stage for *_, stage in events]

    sides, stages = refined_with(room_for_384, 512)  # exactly room for a 384² tile
    assert sides == {384}
    assert stages[0] == f"refine tile 384² ({room_for_384 / 2**30:.1f} GiB free on cpu)"
    assert stages[1] == "refine in 4 tiles of 384²"
    sides, stages = refined_with(room_for_384 - 1, 512)  # a byte less: the next side down
    assert sides == {376} and stages[0].startswith("refine tile 376² (")
    # plenty of room: the setting caps it, or without one the model's native side
    assert refined_with(1 << 50, 512)[1][0] == "refine tile 512² (the setting)"
    assert refined_with(1 << 50, None)[1][0] == "refine tile 256² (the model's native size)"
    # no room at all: never below the smallest useful tile for memory's sake (out of
    # memory there is the fallback's to handle), and a smaller setting is kept as it is
    assert refined_with(0, 512)[0] == {256}
    assert refined_with(0, TILE * 2)[0] == {TILE * 2}


def _upscaled(provider: Any, raster: Any, **params: Any) -> Any:
    from sfumato.core.task_api import TaskContext
    from sfumato.core.tasks import upscale

    ctx = TaskContext(params={"scale": 2.0, **params}, rasters=[raster], model_id="tiny-x2",
                      models=provider)
    return upscale.run(ctx).rasters[0]


def test_the_upscale_task_at_strength_zero_is_the_gan_upscale_exactly_16_bit_kept(
        tile_provider: Any) -> None:
    from sfumato.bridge.raster import Layout
    from sfumato.core.pixels.arrays import array_to_raster, raster_to_array

    source = array_to_raster(_image(np.uint16)[:48, :64], Layout.RGBA16)
    gan = _upscaled(tile_provider, source)
    kept = _upscaled(tile_provider, source, refine="sd15", refine_strength=0.0, refine_seed=1)
    assert kept.layout is Layout.RGBA16 and kept.data == gan.data  # byte for byte
    refined = _upscaled(tile_provider, source, refine="sd15", refine_strength=0.5,
                        refine_steps=2, refine_seed=1)
    assert refined.layout is Layout.RGBA16 and (refined.width, refined.height) == (128, 96)
    before, after = raster_to_array(gan), raster_to_array(refined)
    assert np.array_equal(after[..., 3], before[..., 3])  # alpha as the GAN upscaled it
    opaque = before[..., 3] > 0
    assert np.abs(after[..., :3].astype(int) - before[..., :3])[opaque].mean() > 257  # reworked
    assert np.count_nonzero(after[..., :3][opaque] % 257) > opaque.sum()  # 16-bit, not 8-bit
