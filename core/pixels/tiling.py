"""Tile planning and seam blending for running a model over an image piece by piece.

Each tile has a core (the pixels it is responsible for) and a window: the core plus `pad`
pixels of real neighbouring context, which the model sees and whose output is cropped away.
Neighbouring cores overlap by at least `overlap` pixels and are cross-faded there with linear
ramps, so what is left of a seam after cropping is spread out instead of a step.
Sizes are input pixels unless named `*_out`; the blending runs in torch, on the model's device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Span:
    """One tile along one axis: core [start, end), model window [lo, hi)."""

    start: int
    end: int
    lo: int
    hi: int


@dataclass(frozen=True)
class Tile:
    y: Span
    x: Span
    ramps: tuple[int, int, int, int]  # core overlap with the neighbour above, below, left, right


def plan_axis(
    length: int, tile: int, overlap: int, pad: int, start: int = 0, end: int | None = None
) -> list[Span]:
    """Evenly spaced cores of at most `tile` pixels covering [start, end) (default: the whole
    axis), as few as fit, neighbours overlapping by at least `overlap` (and not much more);
    each window reaches `pad` further, clipped to [0, length)."""
    end = length if end is None else end
    if not 0 <= start < end <= length or tile <= 0 or overlap < 0 or pad < 0:
        raise ValueError(
            f"bad tiling: [{start}, {end}) of {length}, tile={tile} overlap={overlap} pad={pad}"
        )
    if end - start <= tile:
        starts = [start]
        tile = end - start
    elif overlap >= tile:
        raise ValueError(f"tile {tile} must be larger than its overlap {overlap}")
    else:
        count = math.ceil((end - start - overlap) / (tile - overlap))
        # as few tiles as `tile` allows, each only as large as they need to be: the model
        # sees no more overlap than asked for (it would be work thrown away)
        tile = math.ceil((end - start + (count - 1) * overlap) / count)
        step = (end - start - tile) / (count - 1)
        starts = [start + round(i * step) for i in range(count)]
    return [Span(s, s + tile, max(0, s - pad), min(length, s + tile + pad)) for s in starts]


def plan_tiles(
    height: int,
    width: int,
    tile: int,
    overlap: int,
    pad: int,
    core: tuple[int, int, int, int] | None = None,
) -> list[Tile]:
    """Tiles in row-major order whose cores cover `core` (x, y, w, h; default: everything)."""
    x, y, w, h = core if core is not None else (0, 0, width, height)
    return _grid(plan_axis(height, tile, overlap, pad, y, y + h),
                 plan_axis(width, tile, overlap, pad, x, x + w))


def plan_least_work(
    height: int,
    width: int,
    overlap: int,
    pad: int,
    max_window: int,
    max_side: int,
    core: tuple[int, int, int, int] | None = None,
) -> list[Tile]:
    """The grid of tiles covering `core` (x, y, w, h; default: everything) whose windows
    add up to the fewest pixels while each window holds at most `max_window` pixels and
    `max_side` pixels along either axis: one tile whenever the region fits, otherwise as
    few and as large as memory allows, since every cut adds context the model runs twice.
    Ties go to fewer tiles; when nothing fits, the finest grid (MIN_CORE cores)."""
    x, y, w, h = core if core is not None else (0, 0, width, height)
    rows_axis = _Axis(height, overlap, pad, y, y + h)
    cols_axis = _Axis(width, overlap, pad, x, x + w)
    best: tuple[tuple[int, int], int, int] | None = None
    for rows in range(1, rows_axis.most + 1):
        tall, row_total = rows_axis.windows(rows)
        if best is not None and row_total * w >= best[0][0]:
            break  # more rows only add context: nothing further can be smaller
        if tall > max_side or tall > max_window:
            continue
        # the fewest columns that fit are this row count's best (more only add context)
        cols = cols_axis.fewest(tall, max_window, max_side)
        if cols is None:
            continue
        key = (row_total * cols_axis.windows(cols)[1], rows * cols)
        if best is None or key < best[0]:
            best = (key, rows, cols)
    rows, cols = (best[1], best[2]) if best else (rows_axis.most, cols_axis.most)
    return _grid(rows_axis.spans(rows), cols_axis.spans(cols))


def work_ratio(tiles: list[Tile], core_pixels: int) -> float:
    """Pixels the model runs over (every window) per pixel of the region asked for."""
    return sum((t.y.hi - t.y.lo) * (t.x.hi - t.x.lo) for t in tiles) / max(1, core_pixels)


MIN_CORE = 32  # the smallest core plan_least_work cuts an axis into


def _most_tiles(length: int, overlap: int) -> int:
    return max(1, math.ceil((length - overlap) / max(1, MIN_CORE - overlap)))


class _Axis:
    """One axis of a region cut into any number of even tiles, with each count's largest
    window and total window length worked out once."""

    def __init__(self, length: int, overlap: int, pad: int, start: int, end: int) -> None:
        self.length, self.overlap, self.pad, self.start, self.end = (
            length, overlap, pad, start, end)
        self.most = _most_tiles(end - start, overlap)
        self._windows: dict[int, tuple[int, int]] = {}

    def spans(self, count: int) -> list[Span]:
        """`count` evenly spaced cores over [start, end) (plan_axis with the tile size that
        count needs)."""
        if count == 1:
            tile = self.end - self.start
        else:
            tile = math.ceil((self.end - self.start + (count - 1) * self.overlap) / count)
        return plan_axis(self.length, max(tile, self.overlap + 1), self.overlap, self.pad,
                         self.start, self.end)

    def windows(self, count: int) -> tuple[int, int]:
        """(largest window, all windows' total) along this axis for `count` tiles."""
        if count not in self._windows:
            spans = self.spans(count)
            sizes = [span.hi - span.lo for span in spans]
            self._windows[count] = (max(sizes), sum(sizes))
        return self._windows[count]

    def fewest(self, tall: int, max_window: int, max_side: int) -> int | None:
        """The fewest tiles whose largest window, `tall` high, fits: a binary search, as
        windows narrow when tiles are added (to a pixel of rounding)."""

        def fits(count: int) -> bool:
            wide = self.windows(count)[0]
            return wide <= max_side and tall * wide <= max_window

        low, high = 1, self.most
        if not fits(high):
            return None
        while low < high:
            middle = (low + high) // 2
            if fits(middle):
                high = middle
            else:
                low = middle + 1
        return low


def _grid(rows: list[Span], cols: list[Span]) -> list[Tile]:
    row_ramps = _neighbour_overlaps(rows)
    col_ramps = _neighbour_overlaps(cols)
    return [
        Tile(ys, xs, (*row_ramps[i], *col_ramps[j]))
        for i, ys in enumerate(rows)
        for j, xs in enumerate(cols)
    ]


def crossfade(length: int, before: int, after: int) -> np.ndarray:
    """1-D weights for a core of `length` output pixels that overlaps its neighbours by
    `before`/`after` output pixels: linear ramps there, 1 elsewhere. Two overlapping ramps
    sum to exactly 1, so where only two tiles meet this is a true cross-fade."""
    weights = np.ones(length, dtype=np.float32)
    if before > 0:
        weights[:before] *= (np.arange(before, dtype=np.float32) + 0.5) / before
    if after > 0:
        weights[length - after :] *= (np.arange(after, 0, -1, dtype=np.float32) - 0.5) / after
    return weights


class Blender:
    """Accumulates model outputs of tiles into one float32 image of the cores' area, scaled:
    shape (channels, h*scale, w*scale) for a core area (x, y, w, h), on `device` (where the
    model runs, so tiles never leave it; the CPU when the image would not fit there)."""

    def __init__(self, core: tuple[int, int, int, int], channels: int, scale: int,
                 device: torch.device | str = "cpu") -> None:
        self.x, self.y, width, height = core
        self.scale = scale
        self.device = torch.device(device)
        size = (height * scale, width * scale)
        self.sum = torch.zeros((channels, *size), dtype=torch.float32, device=self.device)
        self.weight = torch.zeros((1, *size), dtype=torch.float32, device=self.device)

    def add(self, tile: Tile, window_output: torch.Tensor) -> None:
        """Add the model's output for `tile`'s whole window, shape (C, win_h*s, win_w*s)."""
        s = self.scale
        y, x = tile.y, tile.x
        core = window_output[
            :, (y.start - y.lo) * s : (y.end - y.lo) * s, (x.start - x.lo) * s : (x.end - x.lo) * s
        ].to(self.device, torch.float32)
        rows = slice((y.start - self.y) * s, (y.end - self.y) * s)
        cols = slice((x.start - self.x) * s, (x.end - self.x) * s)
        if tile.ramps == (0, 0, 0, 0):  # a lone tile, or none of its neighbours reach it
            self.sum[:, rows, cols] += core
            self.weight[:, rows, cols] += 1.0
            return
        above, below, left, right = (r * s for r in tile.ramps)
        wy = torch.from_numpy(crossfade((y.end - y.start) * s, above, below)).to(self.device)
        wx = torch.from_numpy(crossfade((x.end - x.start) * s, left, right)).to(self.device)
        weight = (wy[:, None] * wx[None, :])[None]
        self.sum[:, rows, cols] += core * weight
        self.weight[:, rows, cols] += weight

    def result(self) -> torch.Tensor:
        # Every output pixel lies in some core with a positive weight, so no division by 0.
        return self.sum.div_(self.weight)

    @staticmethod
    def nbytes(core: tuple[int, int, int, int], channels: int, scale: int) -> int:
        """What the accumulators take: float32 colour plus a weight plane."""
        return (channels + 1) * 4 * core[2] * core[3] * scale * scale


def _neighbour_overlaps(spans: list[Span]) -> list[tuple[int, int]]:
    overlaps = []
    for i, span in enumerate(spans):
        before = max(0, spans[i - 1].end - span.start) if i > 0 else 0
        after = max(0, span.end - spans[i + 1].start) if i + 1 < len(spans) else 0
        overlaps.append((before, after))
    return overlaps
