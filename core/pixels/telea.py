"""OpenCV's Telea fill: the hole is filled by marching inward from its edge, each pixel a
weighted mean of the known pixels near it. Smooth, no texture, no model: object removal's
fill when no LaMa or MAT model is registered, and a diffusion model's starting image."""

from __future__ import annotations

import numpy as np
from sfumato.core.pixels.compose import from_float, to_float

TELEA_RADIUS_PX = 5  # how far around each pixel the fill looks for known pixels


def telea_fill(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Float RGB `rgb` (H, W, 3) in [0, 1] with the pixels where `hole` is True filled from
    their surround; pixels outside the hole come back unchanged. Works in 8 bits (OpenCV's
    colour inpainting takes no more): a starting point, not a final 16-bit result."""
    import cv2

    if not hole.any():
        return rgb.astype(np.float32, copy=True)
    image = from_float(rgb, np.dtype(np.uint8))
    filled = cv2.inpaint(image, hole.astype(np.uint8) * 255, TELEA_RADIUS_PX, cv2.INPAINT_TELEA)
    return np.where(hole[..., None], to_float(filled), rgb).astype(np.float32)
