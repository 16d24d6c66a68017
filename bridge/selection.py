"""The bounding box of a selection mask, and crops.

Pure Python on bytes: it runs inside GIMP's and Krita's Python, where numpy may be absent,
and it must stay fast on a 4K mask, so scanning is done by `bytes` methods in C.
"""

from __future__ import annotations

import re

from .geometry import Rect
from .raster import Layout, Raster

__all__ = ["Rect", "crop", "mask_bounds"]

_NONZERO = re.compile(rb"[^\x00]")


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
