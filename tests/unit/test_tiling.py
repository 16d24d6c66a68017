"""Tile planning covers every pixel, windows stay in bounds, and blending is a cross-fade."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sfumato.core.pixels.tiling import Blender, crossfade, plan_axis, plan_tiles, tile_for_budget

pytestmark = pytest.mark.unit


@settings(max_examples=200, deadline=None)
@given(
    length=st.integers(1, 3000),
    tile=st.integers(33, 600),
    overlap=st.integers(0, 32),
    pad=st.integers(0, 100),
    data=st.data(),
)
def test_cores_cover_the_range_with_enough_overlap(
    length: int, tile: int, overlap: int, pad: int, data: st.DataObject
) -> None:
    start = data.draw(st.integers(0, length - 1))
    end = data.draw(st.integers(start + 1, length))
    spans = plan_axis(length, tile, overlap, pad, start, end)
    assert spans[0].start == start and spans[-1].end == end
    for span in spans:
        assert span.end - span.start <= tile
        assert 0 <= span.lo <= span.start < span.end <= span.hi <= length
        assert span.lo == max(0, span.start - pad) and span.hi == min(length, span.end + pad)
    for before, after in zip(spans, spans[1:], strict=False):
        assert after.start > before.start
        assert before.end - after.start >= overlap  # no gaps, overlap at least as asked
        assert before.end - after.start <= overlap + 2  # and no model work thrown away
    if end - start > tile:  # as few tiles as the size allows
        assert len(spans) == -(-(end - start - overlap) // (tile - overlap))


def test_a_small_image_is_one_tile() -> None:
    tiles = plan_tiles(100, 80, tile=128, overlap=16, pad=8)
    assert len(tiles) == 1
    assert tiles[0].ramps == (0, 0, 0, 0)


def test_overlap_must_be_smaller_than_tile() -> None:
    with pytest.raises(ValueError):
        plan_axis(500, 16, 16, 0)


def test_crossfade_of_two_neighbours_sums_to_one() -> None:
    overlap = 12
    left = crossfade(40, 0, overlap)
    right = crossfade(40, overlap, 0)
    assert np.allclose(left[-overlap:] + right[:overlap], 1.0)
    assert np.all(left > 0) and np.all(right > 0)
    assert np.all(np.diff(right[:overlap]) > 0)


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_blending_tiles_of_an_exact_model_rebuilds_the_image(scale: int) -> None:
    # With a model that has no spatial context (nearest upscale) tiling must be invisible.
    rng = np.random.default_rng(0)
    image = rng.random((70, 95, 3), dtype=np.float32)
    whole = image.repeat(scale, 0).repeat(scale, 1)
    core = (5, 3, 80, 60)  # x, y, w, h
    blender = Blender(core, channels=3, scale=scale)
    for tile in plan_tiles(70, 95, tile=33, overlap=8, pad=4, core=core):
        window = image[tile.y.lo : tile.y.hi, tile.x.lo : tile.x.hi]
        output = window.repeat(scale, 0).repeat(scale, 1)
        blender.add(tile, torch.from_numpy(output).permute(2, 0, 1))
    x, y, w, h = core
    expected = whole[y * scale : (y + h) * scale, x * scale : (x + w) * scale]
    result = blender.result().permute(1, 2, 0).numpy()
    assert result.shape == expected.shape
    assert np.allclose(result, expected, atol=1e-6)


def test_seams_are_spread_not_stepped() -> None:
    # Two tiles that disagree by a constant meet in a ramp, not a jump.
    tiles = plan_tiles(1, 100, tile=60, overlap=20, pad=0)
    blender = Blender((0, 0, 100, 1), channels=1, scale=1)
    for value, tile in zip((0.0, 1.0), tiles, strict=True):
        blender.add(tile, torch.full((1, 1, tile.x.hi - tile.x.lo), value))
    row = blender.result()[0, 0].numpy()
    assert row[0] == 0.0 and row[-1] == 1.0
    assert np.max(np.diff(row)) <= 1.0 / 20 + 1e-6


def test_tile_for_budget() -> None:
    assert tile_for_budget(1e12, 1000, pad=10, minimum=32, maximum=1024) == 1024
    assert tile_for_budget(0, 1000, pad=10, minimum=32, maximum=1024) == 32
    side = tile_for_budget(4e6 * 10, 10, pad=8, minimum=32, maximum=4096)
    assert side % 8 == 0 and (side + 16) ** 2 * 10 <= 4e7 < (side + 24) ** 2 * 10
