"""Rectangles in layer coordinates, the bounding box of a selection mask, and crops.

Pure Python on bytes: it runs inside GIMP's and Krita's Python, where numpy may be absent,
and it must stay fast on a 4K mask, so scanning is done by `bytes` methods in C.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .raster import Layout, Raster

_NONZERO = re.compile(rb"[^\x00]")


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.x + self.width

    @property
    def bottom(self) -> int:
        return self.y + self.height

    @property
    def is_empty(self) -> bool:
        return self.width <= 0 or self.height <= 0

    def grown(self, margin: int) -> Rect:
        return Rect(self.x - margin, self.y - margin, self.width + 2 * margin,
                    self.height + 2 * margin)

    def clamped(self, bounds: Rect) -> Rect:
        """The part of this rectangle inside `bounds` (empty when they do not meet)."""
        x0, y0 = max(self.x, bounds.x), max(self.y, bounds.y)
        x1, y1 = min(self.right, bounds.right), min(self.bottom, bounds.bottom)
        return Rect(x0, y0, max(0, x1 - x0), max(0, y1 - y0))

    def moved(self, dx: int, dy: int) -> Rect:
        return Rect(self.x + dx, self.y + dy, self.width, self.height)


def mask_bounds(mask: Raster) -> Rect | None:
    """The smallest rectangle holding every non-zero pixel of a gray8 mask, or None."""
    if mask.layout is not Layout.GRAY8:
        raise ValueError(f"a selection mask is gray8, not {mask.layout.value}")
    width = mask.width
    if mask.is_empty:
        return None
    data = mask.packed_bytes() if mask.stride != width else bytes(mask.data)
    first = _NONZERO.search(data)
    if first is None:
        return None
    last = len(data.rstrip(b"\x00")) - 1
    top, bottom = first.start() // width, last // width
    # Columns: each row only needs scanning where it could widen the box found so far.
    left, right = first.start() % width, last % width
    for y in range(top, bottom + 1):
        start = y * width
        if left > 0:
            hit = _NONZERO.search(data, start, start + left)
            if hit is not None:
                left = hit.start() - start
        if right < width - 1:
            right += len(data[start + right + 1 : start + width].rstrip(b"\x00"))
    return Rect(left, top, right - left + 1, bottom - top + 1)


def crop(raster: Raster, rect: Rect) -> Raster:
    """The pixels of `rect` (in the raster's own coordinates), tightly packed."""
    inside = rect.clamped(Rect(0, 0, raster.width, raster.height))
    if inside != rect:
        raise ValueError(f"crop {rect} reaches outside the {raster.width}x{raster.height} raster")
    bpp = raster.layout.bytes_per_pixel
    view = memoryview(raster.data).cast("B")
    rows = (
        view[(rect.y + y) * raster.stride + rect.x * bpp :][: rect.width * bpp]
        for y in range(rect.height)
    )
    return Raster(rect.width, rect.height, raster.layout, b"".join(rows),
                  colorspace=raster.colorspace)
