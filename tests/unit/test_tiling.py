"""Tile planning covers every pixel, windows stay in bounds, and blending is a cross-fade."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sfumato.core.pixels.tiling import (
    MIN_CORE,
    Blender,
    crossfade,
    plan_axis,
    plan_least_work,
    plan_tiles,
    work_ratio,
)

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


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(1, 900),
    width=st.integers(1, 900),
    pad=st.integers(0, 40),
    window_side=st.integers(40, 1200),
)
def test_least_work_plan_covers_the_region_within_its_limits(
    height: int, width: int, pad: int, window_side: int
) -> None:
    max_window = window_side**2
    max_side = window_side + 100
    tiles = plan_least_work(height, width, 16, pad, max_window, max_side)
    covered = np.zeros((height, width), bool)
    for tile in tiles:
        covered[tile.y.start : tile.y.end, tile.x.start : tile.x.end] = True
        assert 0 <= tile.y.lo <= tile.y.start < tile.y.end <= tile.y.hi <= height
    assert covered.all()
    smallest = (MIN_CORE + 2 * pad) ** 2
    if max_window >= smallest and max_side >= MIN_CORE + 2 * pad:  # then something fits
        for tile in tiles:
            tall, wide = tile.y.hi - tile.y.lo, tile.x.hi - tile.x.lo
            assert tall * wide <= max_window and max(tall, wide) <= max_side
    if height * width <= max_window and max(height, width) <= max_side:
        assert len(tiles) == 1  # the whole region fits: one pass, no context run twice


def test_least_work_plan_is_the_least_work_of_all_grids() -> None:
    # brute force over grid shapes (rows x columns of even tiles) for a 1044 px layer
    side, pad, max_window = 1044, 32, 400_000
    best = work_ratio(plan_least_work(side, side, 16, pad, max_window, 1 << 30), side * side)
    for rows in range(1, 12):
        for cols in range(1, 12):
            tile_h = -(-(side + (rows - 1) * 16) // rows)
            tile_w = -(-(side + (cols - 1) * 16) // cols)
            ys = plan_axis(side, tile_h, 16, pad)
            xs = plan_axis(side, tile_w, 16, pad)
            if max(s.hi - s.lo for s in ys) * max(s.hi - s.lo for s in xs) > max_window:
                continue
            area = sum(s.hi - s.lo for s in ys) * sum(s.hi - s.lo for s in xs)
            assert area / side**2 >= best - 1e-9


# The upscale task's settings on the CPU with 16 GiB free (a third of it for one window):
# realesrgan-x4plus needs 64 px of context (bench/upscale_context.py) and 9600 B per window
# pixel (bench/upscale_memory.py): 626k px windows; the compact net 16 px and 1 KiB: up to
# 5.8M px, which CPU_MAX_WINDOW_SIDE (1100 px) caps first. One tile costs only the 10 px
# reflected border: (1 + 20/side)² = 1.34 at 128², 1.08 at 512², at most 1.3 from 256² up.
# Each cut adds the context twice plus the 16 px cross-fade along one axis, so r x c tiles
# cost (side + 20 + (r-1)·(2·context+16))·(same for c) / side²: x4plus 1024² in 2 strips
# 1044·1188/1024² = 1.18, 2048² in 2x5 1.40; compact 2048² in 2x2 1.07.
@pytest.mark.parametrize(
    ("side", "context", "max_window", "max_side", "tiles", "bound"),
    [
        (128, 64, 626_000, 1 << 30, 1, 1.34),
        (512, 64, 626_000, 1 << 30, 1, 1.08),
        (1024, 64, 626_000, 1 << 30, 2, 1.19),
        (2048, 64, 626_000, 1 << 30, 10, 1.40),
        (512, 16, 5_800_000, 1100, 1, 1.08),
        (1024, 16, 5_800_000, 1100, 1, 1.04),
        (2048, 16, 5_800_000, 1100, 4, 1.07),
    ],
)
def test_work_ratio_over_layer_sizes(
    side: int, context: int, max_window: int, max_side: int, tiles: int | None, bound: float
) -> None:
    padded = side + 20  # the 10 px reflected border the task adds at the picture's edges
    plan = plan_least_work(padded, padded, 16, context, max_window, max_side,
                           (10, 10, side, side))
    ratio = work_ratio(plan, side * side)
    assert ratio <= bound + 0.005, (len(plan), ratio)
    if tiles is not None:
        assert len(plan) == tiles
