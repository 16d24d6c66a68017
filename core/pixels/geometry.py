"""Where a diffusion task works: the crop around a selection (plus context,
widened to the model's multiple) and the model's native size for it."""

from __future__ import annotations

import math

from sfumato.bridge.geometry import Rect


def plan_crop(bbox: Rect, layer_w: int, layer_h: int, context_px: int, multiple: int) -> Rect:
    """The region to hand the model: `bbox` (the soft mask's extent, so grow and feather are
    already in it) plus `context_px` on every side, clamped to the layer, then widened where the
    layer has room so each side is a multiple of `multiple`. When the layer is too small the
    size stays off the multiple and the resize to the model's native size absorbs it."""
    if context_px < 0 or multiple < 1:
        raise ValueError("context cannot be negative and the multiple must be at least 1")
    box = bbox.grown(context_px).within(layer_w, layer_h)
    x0, x1 = _widen_to_multiple(box.x, box.right, layer_w, multiple)
    y0, y1 = _widen_to_multiple(box.y, box.bottom, layer_h, multiple)
    return Rect.from_edges(x0, y0, x1, y1)


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
