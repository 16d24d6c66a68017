"""Pixel work around a diffusion call: soft masks, crop planning, resizing, colour matching and
the result layer. Pure numpy (plus PIL for Lanczos resampling).

Conventions: images are (H, W, C) arrays in RGBA or RGB order with straight alpha; masks are
(H, W) uint8 with 0 = keep, 255 = selected, grey = partly selected. Integer images stay in
their dtype (uint8 or uint16); float images are in [0, 1]. Boxes are half-open pixel ranges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_INT_MAX = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}
_STATS_SAMPLE = 1 << 16


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


# --- masks -------------------------------------------------------------------------------


def mask_reach(grow_px: int, feather_px: int) -> int:
    """How far (Chebyshev pixels) `soft_mask` can spread a selection outward."""
    return grow_px + 2 * _feather_spread(feather_px)


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
    spread = _feather_spread(feather_px)
    if spread > 0:
        widened = max_filter(grown, spread).astype(np.float32)
        first, second = (spread + 1) // 2, spread // 2
        ramp = box_blur(box_blur(widened, first), second) / np.float32(255.0)
        # cumulative-sum rounding can leave tiny negatives or values a hair over 1 in the ramp
        np.clip(ramp, 0.0, 1.0, out=ramp)
        weights = np.maximum(weights, ramp)
    return np.ascontiguousarray(weights[reach:-reach, reach:-reach])


def _feather_spread(feather_px: int) -> int:
    return (feather_px + 1) // 2


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


def selection_bbox(mask: np.ndarray) -> Box | None:
    """The smallest box holding every non-zero mask pixel; None for an empty selection."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    cols = np.flatnonzero(mask[y0:y1].any(axis=0))
    return Box(int(cols[0]), y0, int(cols[-1]) + 1, y1)


# --- geometry ----------------------------------------------------------------------------


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


def selection_crop(
    mask: np.ndarray, selected: Box, grow_px: int, feather_px: int, context_px: int,
    multiple: int,
) -> tuple[Box, np.ndarray]:
    """Where to work for a selection whose bounding box (`selection_bbox`) is `selected`: the
    crop box (see `plan_crop`) and the soft mask over exactly that box.

    Only the crop is ever filtered, so the cost follows the selection, not the layer: a small
    selection on a huge layer costs one scan for its bounding box and little more."""
    height, width = mask.shape
    extent = selected.expand(mask_reach(grow_px, feather_px)).clamp(width, height)
    crop = plan_crop(extent, width, height, context_px, multiple)
    # The crop reaches past the selection by the filters' reach (or to the layer edge), so
    # filtering the crop alone gives the same weights as filtering the whole mask.
    return crop, soft_mask(np.ascontiguousarray(mask[crop.slices]), grow_px, feather_px)


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


# --- pixels --------------------------------------------------------------------------------


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8/uint16 pixels as float32 in [0, 1]; float input is returned as float32."""
    limit = _INT_MAX.get(image.dtype)
    if limit is None:
        return image.astype(np.float32, copy=False)
    return image.astype(np.float32) / np.float32(limit)


def from_float(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float pixels in [0, 1] as `dtype` (uint8, uint16 or float32), rounding to nearest."""
    clipped = np.clip(image, 0.0, 1.0)
    limit = _INT_MAX.get(np.dtype(dtype))
    if limit is None:
        return clipped.astype(np.float32)
    return np.rint(clipped * limit).astype(dtype)


def rgb_over_grey(rgba: np.ndarray) -> np.ndarray:
    """Float RGB for the model: transparent pixels become mid grey rather than whatever colour
    their (meaningless) RGB holds."""
    pixels = to_float(rgba)
    alpha = pixels[..., 3:4]
    return pixels[..., :3] * alpha + np.float32(0.5) * (1.0 - alpha)


def resize_rgb(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Lanczos-resize an (H, W, C) image to `size` = (width, height), keeping its dtype.

    The same size returns a copy untouched, so no resampling ever blurs a native-size crop.
    """
    from PIL import Image

    width, height = size
    if (image.shape[1], image.shape[0]) == (width, height):
        return image.copy()
    if image.dtype == np.uint8 and image.shape[2] in (3, 4):
        mode = "RGB" if image.shape[2] == 3 else "RGBA"
        resized = Image.fromarray(image, mode).resize((width, height), Image.Resampling.LANCZOS)
        return np.asarray(resized)
    pixels = to_float(image)
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(pixels[..., c]), "F").resize(
                (width, height), Image.Resampling.LANCZOS
            )
        )
        for c in range(pixels.shape[2])
    ]
    stacked = np.stack(channels, axis=-1)
    if image.dtype in _INT_MAX:
        return from_float(stacked, image.dtype)
    return np.clip(stacked, 0.0, 1.0).astype(np.float32)  # Lanczos overshoots at edges


def resize_mask(weights: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear-resize float (H, W) weights to `size` = (width, height). Bilinear never rings,
    so a zero region stays exactly zero and a covered one stays covered."""
    from PIL import Image

    width, height = size
    if (weights.shape[1], weights.shape[0]) == (width, height):
        return weights.astype(np.float32, copy=True)
    image = Image.fromarray(np.ascontiguousarray(weights, dtype=np.float32), "F")
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR))


def match_colours(
    generated: np.ndarray, original: np.ndarray, weight_mask: np.ndarray, min_weight: float = 16.0
) -> np.ndarray:
    """Shift `generated` (float RGB) so its per-channel mean and spread match `original` where
    `weight_mask` is positive (the known pixels around the selection, which the model should
    have reproduced). Models often return those a little washed out or tinted; correcting the
    whole generated crop by the same transfer makes the fill sit in the image. With less than
    `min_weight` of known pixels there is nothing to estimate from and `generated` is returned.
    """
    weights = weight_mask.reshape(-1)
    used = np.flatnonzero(weights > 0)
    if weights[used].sum(dtype=np.float64) < min_weight:
        return generated
    # statistics need no more than a few tens of thousands of pixels: take an even sample
    used = used[:: max(1, used.size // _STATS_SAMPLE)]
    w = weights[used].astype(np.float64)
    w /= w.sum()
    gen_mean, gen_std = _weighted_stats(generated.reshape(-1, 3)[used], w)
    known = original.reshape(-1, original.shape[-1])[used, :3]
    ref_mean, ref_std = _weighted_stats(to_float(known), w)
    # bounded, so a flat known region cannot blow the fill's contrast up or flatten it away
    ratio = np.clip(ref_std / np.maximum(gen_std, 1e-4), 0.5, 2.0)
    scale = ratio.astype(np.float32)
    shift = (ref_mean - gen_mean * ratio).astype(np.float32)
    return np.clip(generated * scale + shift, 0.0, 1.0).astype(np.float32)


def _weighted_stats(pixels: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # per-channel weighted mean and standard deviation; weights sum to 1
    values = pixels.astype(np.float64)
    mean = weights @ values
    variance = weights @ (values - mean) ** 2
    return mean, np.sqrt(variance)


def compose_result_layer(
    generated_crop_rgb: np.ndarray,
    original_crop_rgba: np.ndarray,
    soft_mask_crop: np.ndarray,
    keep_alpha: bool = False,
) -> np.ndarray:
    """The new layer's pixels: generated colour where the soft mask is positive, the original
    colour elsewhere, in the original's dtype.

    Alpha is the soft mask, so the layer fills transparent holes inside the selection (what
    inpainting is for). With `keep_alpha` it is the soft mask times the original alpha, so a
    refined cut-out keeps its shape. Either way alpha is exactly 0 where the soft mask is 0,
    and compositing the layer over the source leaves those pixels bit-identical.
    """
    dtype = original_crop_rgba.dtype
    limit = _INT_MAX.get(dtype)
    if limit is None:
        raise ValueError(f"result layers are uint8 or uint16, not {dtype}")
    selected = soft_mask_crop > 0
    generated = from_float(to_float(generated_crop_rgb), dtype)
    layer = original_crop_rgba.copy()
    layer[..., :3] = np.where(selected[..., None], generated, original_crop_rgba[..., :3])
    alpha = soft_mask_crop.astype(np.float64)
    if keep_alpha:
        alpha = alpha * (original_crop_rgba[..., 3] / limit)
    layer[..., 3] = np.rint(np.clip(alpha, 0.0, 1.0) * limit).astype(dtype)
    return layer


def composite_over(
    source_rgba: np.ndarray, layer_rgba: np.ndarray, offset: tuple[int, int]
) -> np.ndarray:
    """`layer_rgba` placed at `offset` = (x, y) over `source_rgba`, Porter-Duff "over" with
    straight alpha (the editors' normal mode). Returns a new array; parts of the layer outside
    the source are dropped. Where the layer's alpha is 0 the source pixel is kept as is."""
    if source_rgba.dtype != layer_rgba.dtype or source_rgba.dtype not in _INT_MAX:
        raise ValueError("source and layer must share one dtype, uint8 or uint16")
    limit = _INT_MAX[source_rgba.dtype]
    result = source_rgba.copy()
    x, y = offset
    height, width = source_rgba.shape[:2]
    target = Box(x, y, x + layer_rgba.shape[1], y + layer_rgba.shape[0]).clamp(width, height)
    if target.width <= 0 or target.height <= 0:
        return result
    layer = layer_rgba[target.y0 - y : target.y1 - y, target.x0 - x : target.x1 - x]
    under = source_rgba[target.slices]
    layer_a = layer[..., 3:4].astype(np.float64) / limit
    under_a = under[..., 3:4].astype(np.float64) / limit
    out_a = layer_a + under_a * (1.0 - layer_a)
    weighted = layer[..., :3] * layer_a + under[..., :3] * under_a * (1.0 - layer_a)
    out_rgb = np.divide(weighted, out_a, out=np.zeros_like(weighted), where=out_a > 0)
    blended = np.concatenate([out_rgb, out_a * limit], axis=-1)
    blended = np.rint(np.clip(blended, 0, limit)).astype(source_rgba.dtype)
    blended = np.where(layer[..., 3:4] == 0, under, blended)
    blended = np.where(layer[..., 3:4] == limit, layer, blended)
    result[target.slices] = blended
    return result
