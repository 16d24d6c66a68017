"""Wavelet colour fix: the restored picture's fine detail over the stage-1 picture's colours.

Each picture is split into a low band (blurred by a 3x3 kernel dilated 1, 2, 4, 8, 16 px in
turn) and the detail the blurs removed; the result is the restored detail plus the reference's
low band, so the diffusion's colour drift at large scales is undone."""

from __future__ import annotations

import torch
import torch.nn.functional as F

LEVELS = 5


def wavelet_colour_fix(restored: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    detail, _ = _split(restored)
    _, low = _split(reference)
    return detail + low


def _split(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    kernel = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]],
                          device=image.device, dtype=image.dtype) / 16
    channels = image.shape[1]
    kernel = kernel.expand(channels, 1, 3, 3)
    low, detail = image, torch.zeros_like(image)
    for level in range(LEVELS):
        radius = 2**level
        padded = F.pad(low, (radius,) * 4, mode="replicate")
        blurred = F.conv2d(padded, kernel, groups=channels, dilation=radius)
        detail = detail + (low - blurred)
        low = blurred
    return detail, low
