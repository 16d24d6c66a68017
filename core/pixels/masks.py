"""Selection masks: the soft mask (grow, then feather outward; its reach is
bridge.geometry.mask_reach), the filters it is
made of, the selection's bounding box, and mask resizing. Masks are (H, W) uint8 with
0 = keep, 255 = selected, grey = partly selected; soft masks are float32 weights in [0, 1]."""

from __future__ import annotations

import numpy as np
from sfumato.bridge.geometry import Rect, feather_spread, mask_reach
from sfumato.core.pixels.geometry import plan_crop


def soft_mask(mask: np.ndarray, grow_px: int, feather_px: int) -> np.ndarray:
    """The selection as float32 weights in [0, 1], grown then feathered outward.

    Grow is a grey dilation by a square of radius `grow_px`. Feather adds a smooth ramp about
    `feather_px` wide outside the grown selection: it dilates by half the width, then blurs with
    two box filters of the same total radius, and keeps the larger of that and the grown mask.
    So fully selected pixels stay exactly 1, partial selection is never lowered, and pixels
    farther than `mask_reach(grow_px, feather_px)` from any selected pixel stay exactly 0.
    Outside the array the mask is taken to continue its edge values (a selection touching the
    layer edge stays selected up to it).
    """
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError(f"a mask is an (H, W) uint8 array, not {mask.dtype} {mask.shape}")
    if grow_px < 0 or feather_px < 0:
        raise ValueError("grow and feather are pixel counts and cannot be negative")
    reach = mask_reach(grow_px, feather_px)
    if reach == 0 or not mask.any():
        return mask.astype(np.float32) / np.float32(255.0)
    # Extend the mask's edges once, by as far as any filter below can see, so the filters'
    # own edge handling never shows in the result (and a crop gives what the whole would).
    padded = np.pad(mask, reach, mode="edge")
    grown = max_filter(padded, grow_px)
    weights = grown.astype(np.float32) / np.float32(255.0)
    spread = feather_spread(feather_px)
    if spread > 0:
        widened = max_filter(grown, spread).astype(np.float32)
        first, second = (spread + 1) // 2, spread // 2
        ramp = box_blur(box_blur(widened, first), second) / np.float32(255.0)
        # cumulative-sum rounding can leave tiny negatives or values a hair over 1 in the ramp
        np.clip(ramp, 0.0, 1.0, out=ramp)
        weights = np.maximum(weights, ramp)
    return np.ascontiguousarray(weights[reach:-reach, reach:-reach])


def max_filter(array: np.ndarray, radius: int) -> np.ndarray:
    """Maximum over a (2r+1)-square window around each pixel of a 2-D array, edges extended."""
    if radius <= 0:
        return array
    return _max_filter_1d(_max_filter_1d(array, radius, axis=0), radius, axis=1)


def _max_filter_1d(array: np.ndarray, radius: int, axis: int) -> np.ndarray:
    # van Herk / Gil-Werman: block prefix and suffix maxima give any window's max in O(1).
    size = 2 * radius + 1
    moved = np.moveaxis(array, axis, -1)
    length = moved.shape[-1]
    total = -(-(length + 2 * radius) // size) * size
    padding = [(0, 0)] * (moved.ndim - 1) + [(radius, total - length - radius)]
    padded = np.pad(moved, padding, mode="edge")
    blocks = padded.reshape(*padded.shape[:-1], total // size, size)
    prefix = np.maximum.accumulate(blocks, axis=-1).reshape(padded.shape)
    suffix = np.maximum.accumulate(blocks[..., ::-1], axis=-1)[..., ::-1].reshape(padded.shape)
    result = np.maximum(suffix[..., :length], prefix[..., size - 1 : size - 1 + length])
    return np.moveaxis(result, -1, axis)


def box_blur(array: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)-square window of a 2-D float32 array, edges extended.

    Cumulative sums make it O(pixels) for any radius; a window of exact zeros stays exactly 0.
    """
    if radius <= 0:
        return array
    return _box_blur_1d(_box_blur_1d(array, radius, axis=0), radius, axis=1)


def _box_blur_1d(array: np.ndarray, radius: int, axis: int) -> np.ndarray:
    size = 2 * radius + 1
    moved = np.moveaxis(array, axis, -1)
    padding = [(0, 0)] * (moved.ndim - 1) + [(radius + 1, radius)]
    padded = np.pad(moved, padding, mode="edge")
    padded[..., 0] = 0  # the leading zero of the running sum
    sums = np.cumsum(padded, axis=-1, dtype=np.float32)
    result = (sums[..., size:] - sums[..., :-size]) / np.float32(size)
    return np.moveaxis(result, -1, axis)


def selection_bbox(mask: np.ndarray) -> Rect | None:
    """The smallest box holding every non-zero mask pixel; None for an empty selection."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    cols = np.flatnonzero(mask[y0:y1].any(axis=0))
    return Rect.from_edges(int(cols[0]), y0, int(cols[-1]) + 1, y1)


def selection_crop(
    mask: np.ndarray, selected: Rect, grow_px: int, feather_px: int, context_px: int,
    multiple: int,
) -> tuple[Rect, np.ndarray]:
    """Where to work for a selection whose bounding box (`selection_bbox`) is `selected`: the
    crop box (see `plan_crop`) and the soft mask over exactly that box.

    Only the crop is ever filtered, so the cost follows the selection, not the layer: a small
    selection on a huge layer costs one scan for its bounding box and little more."""
    height, width = mask.shape
    extent = selected.grown(mask_reach(grow_px, feather_px)).within(width, height)
    crop = plan_crop(extent, width, height, context_px, multiple)
    # The crop reaches past the selection by the filters' reach (or to the layer edge), so
    # filtering the crop alone gives the same weights as filtering the whole mask.
    return crop, soft_mask(np.ascontiguousarray(mask[crop.slices]), grow_px, feather_px)


def resize_mask(weights: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear-resize float (H, W) weights to `size` = (width, height). Bilinear never rings,
    so a zero region stays exactly zero and a covered one stays covered."""
    from PIL import Image

    width, height = size
    if (weights.shape[1], weights.shape[0]) == (width, height):
        return weights.astype(np.float32, copy=True)
    image = Image.fromarray(np.ascontiguousarray(weights, dtype=np.float32), "F")
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR))
