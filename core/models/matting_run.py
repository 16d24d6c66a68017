"""Soft edges from a hard mask with a matting model (VitMatte): a trimap (sure foreground,
sure background, and an unknown band along the mask's edge), the model's alpha in the band.
Only the band's bounding box runs through the model, scaled down when it is larger than
MATTING_SIDE, so a 4096² layer costs what its edge costs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sfumato.core.pixels.masks import max_filter

MATTING_SIDE = 1536  # longest side the band's box is run at (VitMatte's ViT is quadratic)
MULTIPLE = 32  # VitMatte pads its input to a multiple of this
UNKNOWN = 128  # the trimap's "the model decides" value


def edge_band(height: int, width: int) -> int:
    """Half-width of the unknown band: 1% of the longer side, at least 3 pixels."""
    return max(3, round(max(height, width) / 100))


def trimap(mask: np.ndarray, band: int) -> np.ndarray:
    """uint8 trimap of a bool mask: 255 sure foreground, 0 sure background, 128 unknown
    within `band` pixels of the edge."""
    selected = mask.astype(np.uint8)
    grown = max_filter(selected, band)
    shrunk = 1 - max_filter(1 - selected, band)
    out = np.full(mask.shape, UNKNOWN, np.uint8)
    out[shrunk.astype(bool)] = 255
    out[~grown.astype(bool)] = 0
    return out


@dataclass
class Matting:
    model: Any  # VitMatteForImageMatting
    device: str

    def refine(self, rgba8: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """float32 alpha (H, W) in [0, 1]: 1 inside the mask, 0 outside, the model's alpha in
        the band along its edge."""
        height, width = mask.shape
        tri = trimap(mask, edge_band(height, width))
        alpha = (tri == 255).astype(np.float32)
        rows = np.flatnonzero((tri == UNKNOWN).any(axis=1))
        if rows.size == 0:
            return alpha
        cols = np.flatnonzero((tri == UNKNOWN).any(axis=0))
        band = edge_band(height, width)
        y0, y1 = max(0, rows[0] - band), min(height, rows[-1] + 1 + band)
        x0, x1 = max(0, cols[0] - band), min(width, cols[-1] + 1 + band)
        box = np.s_[y0:y1, x0:x1]
        predicted = self._alpha(rgba8[box], tri[box])
        unknown = tri[box] == UNKNOWN
        alpha[box][unknown] = predicted[unknown]
        return alpha

    def _alpha(self, rgba8: np.ndarray, tri: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F
        from PIL import Image

        height, width = tri.shape
        scale = min(1.0, MATTING_SIDE / max(height, width))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        rgb = np.asarray(Image.fromarray(np.ascontiguousarray(rgba8), "RGBA").resize(
            size, Image.Resampling.BILINEAR).convert("RGB"))
        small_tri = np.asarray(Image.fromarray(tri).resize(size, Image.Resampling.NEAREST))
        # VitMatteImageProcessor: image to [-1, 1], trimap to [0, 1], padded to MULTIPLE
        image = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float() / 127.5 - 1.0
        guide = torch.from_numpy(small_tri.copy())[None].float() / 255.0
        pixels = torch.cat([image, guide])[None].to(self.device)
        pad_h, pad_w = (-size[1]) % MULTIPLE, (-size[0]) % MULTIPLE
        pixels = F.pad(pixels, (0, pad_w, 0, pad_h))
        with torch.inference_mode():
            alphas = self.model(pixel_values=pixels).alphas[..., :size[1], :size[0]]
        if scale < 1.0:
            alphas = F.interpolate(alphas.float(), (height, width), mode="bilinear",
                                   align_corners=False)
        return np.clip(alphas[0, 0].float().cpu().numpy(), 0.0, 1.0)
