"""Tile planning and seam blending for running a model over an image piece by piece.

Each tile has a core (the pixels it is responsible for) and a window: the core plus `pad`
pixels of real neighbouring context, which the model sees and whose output is cropped away.
Neighbouring cores overlap by at least `overlap` pixels and are cross-faded there with linear
ramps, so what is left of a seam after cropping is spread out instead of a step.
Pure numpy; sizes are input pixels unless named `*_out`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


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
    axis), neighbours overlapping by at least `overlap`; each window reaches `pad` further,
    clipped to [0, length)."""
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
    rows = plan_axis(height, tile, overlap, pad, y, y + h)
    cols = plan_axis(width, tile, overlap, pad, x, x + w)
    row_ramps = _neighbour_overlaps(rows)
    col_ramps = _neighbour_overlaps(cols)
    return [
        Tile(ys, xs, (*row_ramps[i], *col_ramps[j]))
        for i, ys in enumerate(rows)
        for j, xs in enumerate(cols)
    ]


def tile_for_budget(
    budget_bytes: float, bytes_per_pixel: float, pad: int, minimum: int, maximum: int
) -> int:
    """The largest core size (a multiple of 8, within [minimum, maximum]) whose window of
    (tile + 2*pad)^2 input pixels fits in `budget_bytes`."""
    side = math.isqrt(max(0, int(budget_bytes / max(bytes_per_pixel, 1e-9)))) - 2 * pad
    side -= side % 8
    return max(minimum, min(maximum, side))


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
    shape (h*scale, w*scale, channels) for a core area (x, y, w, h)."""

    def __init__(self, core: tuple[int, int, int, int], channels: int, scale: int) -> None:
        self.x, self.y, width, height = core
        self.scale = scale
        self.sum = np.zeros((height * scale, width * scale, channels), dtype=np.float32)
        self.weight = np.zeros((height * scale, width * scale, 1), dtype=np.float32)

    def add(self, tile: Tile, window_output: np.ndarray) -> None:
        """Add the model's output for `tile`'s whole window, shape (win_h*s, win_w*s, C)."""
        s = self.scale
        y, x = tile.y, tile.x
        core = window_output[
            (y.start - y.lo) * s : (y.end - y.lo) * s, (x.start - x.lo) * s : (x.end - x.lo) * s
        ]
        above, below, left, right = (r * s for r in tile.ramps)
        wy = crossfade((y.end - y.start) * s, above, below)
        wx = crossfade((x.end - x.start) * s, left, right)
        weight = (wy[:, None] * wx[None, :])[:, :, None]
        rows = slice((y.start - self.y) * s, (y.end - self.y) * s)
        cols = slice((x.start - self.x) * s, (x.end - self.x) * s)
        self.sum[rows, cols] += core * weight
        self.weight[rows, cols] += weight

    def result(self) -> np.ndarray:
        # Every output pixel lies in some core with a positive weight, so no division by 0.
        return np.divide(self.sum, self.weight, out=self.sum)


def _neighbour_overlaps(spans: list[Span]) -> list[tuple[int, int]]:
    overlaps = []
    for i, span in enumerate(spans):
        before = max(0, spans[i - 1].end - span.start) if i > 0 else 0
        after = max(0, span.end - spans[i + 1].start) if i + 1 < len(spans) else 0
        overlaps.append((before, after))
    return overlaps
