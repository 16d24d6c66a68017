"""Where a diffusion task works: pixel boxes, the crop around a selection (plus context,
widened to the model's multiple) and the model's native size for it."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Box:
    """A pixel rectangle [x0, x1) x [y0, y1)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def slices(self) -> tuple[slice, slice]:
        """Index an (H, W, ...) array with this box: `array[box.slices]`."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def expand(self, px: int) -> Box:
        return Box(self.x0 - px, self.y0 - px, self.x1 + px, self.y1 + px)

    def clamp(self, width: int, height: int) -> Box:
        return Box(max(self.x0, 0), max(self.y0, 0), min(self.x1, width), min(self.y1, height))


def plan_crop(bbox: Box, layer_w: int, layer_h: int, context_px: int, multiple: int) -> Box:
    """The region to hand the model: `bbox` (the soft mask's extent, so grow and feather are
    already in it) plus `context_px` on every side, clamped to the layer, then widened where the
    layer has room so each side is a multiple of `multiple`. When the layer is too small the
    size stays off the multiple and the resize to the model's native size absorbs it."""
    if context_px < 0 or multiple < 1:
        raise ValueError("context cannot be negative and the multiple must be at least 1")
    box = bbox.expand(context_px).clamp(layer_w, layer_h)
    x0, x1 = _widen_to_multiple(box.x0, box.x1, layer_w, multiple)
    y0, y1 = _widen_to_multiple(box.y0, box.y1, layer_h, multiple)
    return Box(x0, y0, x1, y1)


def _widen_to_multiple(start: int, end: int, limit: int, multiple: int) -> tuple[int, int]:
    want = min(-(-(end - start) // multiple) * multiple, limit)
    extra = want - (end - start)
    start -= extra // 2
    end = start + want
    shift = max(0, -start) - max(0, end - limit)  # slide back inside the layer
    return start + shift, end + shift


def native_size(
    width: int, height: int, target_pixels: int = 1024 * 1024, multiple: int = 8
) -> tuple[int, int]:
    """The size with about `target_pixels` pixels, the same aspect, each side a multiple."""
    if width < 1 or height < 1 or target_pixels < 1 or multiple < 1:
        raise ValueError("sizes, pixel counts and the multiple must be positive")
    scale = math.sqrt(target_pixels / (width * height))
    return (
        max(multiple, round(width * scale / multiple) * multiple),
        max(multiple, round(height * scale / multiple) * multiple),
    )
