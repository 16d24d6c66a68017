"""Pixels as torch tensors on the model's device, for tasks that run there end to end.

Integer pixels travel to the device as they are (a quarter of the bytes of float32 for
8-bit) and are converted there; results are rounded and packed there too, so only the final
raster crosses back. The arithmetic is raster_arrays' (same float32 steps, round half to
even), so a result does not depend on which side converted it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch


def to_unit_tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, C) uint8/uint16/float32 pixels as (C, H, W) float32 in [0, 1] on `device`
    (float input is clipped, not rescaled)."""
    if array.dtype == np.uint16:
        array = array.astype(np.int32)  # not every device converts torch's uint16
    with warnings.catch_warnings():
        # a raster's pixels are often read-only; nothing below writes to them: every path
        # makes a new tensor before changing anything
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        tensor = torch.from_numpy(array).to(device).permute(2, 0, 1)
    if array.dtype == np.uint8:
        return tensor.to(torch.float32).div_(255.0)
    if array.dtype == np.int32:
        return tensor.to(torch.float32).div_(65535.0)
    return tensor.to(torch.float32).clamp(0.0, 1.0)


def pack_unit(parts: Sequence[torch.Tensor], dtype: np.dtype) -> np.ndarray:
    """(C_i, H, W) float32 parts in [0, 1], side by side as one (H, W, sum C_i) array of
    `dtype` on the CPU. The parts are clamped and scaled in place (they are the caller's
    temporaries): the float image is never copied whole, and only the packed pixels leave
    the device."""
    height, width = parts[0].shape[1:]
    channels = sum(part.shape[0] for part in parts)
    top, packed_dtype = _PACKING[np.dtype(dtype)]
    packed = torch.empty((height, width, channels), dtype=packed_dtype, device=parts[0].device)
    first = 0
    for part in parts:
        unit = part.clamp_(0.0, 1.0)
        if top:
            unit = unit.mul_(top).round_()
        packed[:, :, first : first + part.shape[0]] = unit.permute(1, 2, 0)
        first += part.shape[0]
    array = packed.cpu().numpy()
    return array.astype(np.uint16) if dtype == np.uint16 else array


# dtype -> (the integer top value or 0 for float, what the device packs into; uint16 goes
# through int32 since not every device converts to torch's uint16)
_PACKING = {
    np.dtype(np.uint8): (255.0, torch.uint8),
    np.dtype(np.uint16): (65535.0, torch.int32),
    np.dtype(np.float32): (0.0, torch.float32),
}


def linear_to_srgb(linear: torch.Tensor) -> torch.Tensor:
    c = linear.clamp(0.0, 1.0)
    return torch.where(c <= 0.0031308, c * 12.92, 1.055 * c.pow(1 / 2.4) - 0.055)


def srgb_to_linear(srgb: torch.Tensor) -> torch.Tensor:
    c = srgb.clamp(0.0, 1.0)
    return torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055).pow(2.4))


def reflect_pad(image: torch.Tensor, top: int, bottom: int, left: int, right: int
                ) -> torch.Tensor:
    """(C, H, W) with mirrored borders that leave out the edge pixel (numpy's "reflect").
    torch's own needs each border narrower than the image; a tiny image goes through numpy,
    which reflects as often as it takes."""
    if not any((top, bottom, left, right)):
        return image
    height, width = image.shape[-2:]
    if max(top, bottom) < height and max(left, right) < width:
        return torch.nn.functional.pad(image[None], (left, right, top, bottom), mode="reflect")[0]
    padded = np.pad(image.cpu().numpy(), ((0, 0), (top, bottom), (left, right)), mode="reflect")
    return torch.from_numpy(padded).to(image.device)
