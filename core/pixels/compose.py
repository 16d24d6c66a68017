"""Pixels around a diffusion call: int <-> float, transparent pixels for the model, resizing,
colour matching to the known surround, the result layer and "over" compositing. Images are
(H, W, C) arrays with straight alpha; integer images keep their dtype, floats are in [0, 1]."""

from __future__ import annotations

import numpy as np
from sfumato.bridge.geometry import Rect

_INT_MAX = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}
_STATS_SAMPLE = 1 << 16



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
    target = Rect(x, y, layer_rgba.shape[1], layer_rgba.shape[0]).within(width, height)
    if target.width <= 0 or target.height <= 0:
        return result
    layer = layer_rgba[target.y - y : target.bottom - y, target.x - x : target.right - x]
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
