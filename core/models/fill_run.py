"""One pass of a LaMa or MAT fill over a crop: crop -> the model's working size -> the network
-> back to the crop's size; only the hole's pixels change."""

from __future__ import annotations

from typing import Any

import numpy as np
from sfumato.core.models.fill_loader import fill_kind
from sfumato.core.models.registry import ModelKind
from sfumato.core.pixels.compose import resize_rgb
from sfumato.core.pixels.geometry import native_size
from sfumato.core.pixels.masks import resize_mask

FILL_SIDE = 512  # LaMa's and MAT's training size; MAT takes only multiples of it, square
FILL_MULTIPLE = 8  # LaMa: three 2x down-samplings


def fill_size(kind: str, width: int, height: int, side: int | None) -> tuple[int, int]:
    """(width, height) the model runs at for a crop. LaMa runs at the crop's own size (a
    multiple of 8) when it holds no more than side² pixels, else at that area, same aspect;
    MAT always at a side x side square, side a multiple of 512."""
    side = side or FILL_SIDE
    if kind == ModelKind.MAT.value:
        square = max(FILL_SIDE, round(side / FILL_SIDE) * FILL_SIDE)
        return square, square
    if width * height <= side * side:
        return (max(FILL_MULTIPLE, -(-width // FILL_MULTIPLE) * FILL_MULTIPLE),
                max(FILL_MULTIPLE, -(-height // FILL_MULTIPLE) * FILL_MULTIPLE))
    return native_size(width, height, side * side, FILL_MULTIPLE)


def run_fill(model: Any, rgb: np.ndarray, hole: np.ndarray, side: int | None,
             device: str) -> np.ndarray:
    """Float RGB (H, W, 3) with the `hole` (H, W bool) filled by `model`, a spandrel
    MaskedImageModelDescriptor; pixels outside the hole come back unchanged."""
    import torch

    height, width = hole.shape
    size = fill_size(fill_kind(model), width, height, side)
    image = resize_rgb(rgb.astype(np.float32), size)
    # a pixel even partly in the hole at the working size is a hole pixel: no object leaks
    mask = (resize_mask(hole.astype(np.float32), size) > 0).astype(np.float32)
    with torch.inference_mode():
        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
        holes = torch.from_numpy(mask)[None, None]
        out = model(tensor.to(device), holes.to(device))
        filled = out[0].float().clamp(0.0, 1.0).permute(1, 2, 0).cpu().numpy()
    filled = resize_rgb(np.ascontiguousarray(filled, dtype=np.float32), (width, height))
    return np.where(hole[..., None], filled, rgb).astype(np.float32)
