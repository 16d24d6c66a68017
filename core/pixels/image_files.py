"""Image files <-> rasters for the CLI: 8- and 16-bit PNG/TIFF, JPEG, WebP; grey, RGB, RGBA.

OpenCV reads and writes 16-bit files losslessly where Pillow would drop to 8 bits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.raster import Layout, Raster
from sfumato.core.errors import SfumatoError
from sfumato.core.pixels.arrays import array_to_raster, raster_to_array, rgba_layout_for

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"}


def read_rgba(path: Path) -> Raster:
    """Any supported image as RGBA (8 or 16 bit, or float32 for float TIFFs)."""
    array = _read(path)
    if array.ndim == 2:
        array = array[:, :, None]
    channels = array.shape[2]
    if channels == 1:
        rgb = np.repeat(array, 3, axis=2)
    else:
        rgb = array[:, :, 2::-1]  # OpenCV's BGR -> RGB
    if channels == 4:
        alpha = array[:, :, 3:4]
    else:
        opaque = {np.uint8: 255, np.uint16: 65535}.get(array.dtype.type, 1.0)
        alpha = np.full(array.shape[:2] + (1,), opaque, dtype=array.dtype)
    rgba = np.concatenate([rgb, alpha], axis=2)
    return array_to_raster(rgba, rgba_layout_for(rgba.dtype))


def read_mask(path: Path) -> Raster:
    """A selection mask as gray8: white = selected, black = kept, grey = partly."""
    array = _read(path)
    if array.ndim == 3:
        array = array[:, :, 0] if array.shape[2] < 3 else array[:, :, :3].mean(axis=2)
    if array.dtype == np.uint16:
        array = array / 257.0
    return array_to_raster(np.rint(array).astype(np.uint8), Layout.GRAY8)


def has_alpha_channel(path: Path) -> bool:
    """Whether the file itself stores alpha (read from its header only)."""
    from PIL import Image

    with Image.open(path) as image:
        return "A" in image.getbands() or "transparency" in image.info


def write_image(path: Path, raster: Raster, *, drop_alpha: bool = False) -> None:
    """Write a raster; `drop_alpha` writes RGB (for inputs that had no alpha channel)."""
    import cv2

    array = raster_to_array(raster)
    if array.shape[2] == 4:
        # RGBA -> OpenCV's BGRA (or BGR)
        array = array[:, :, [2, 1, 0]] if drop_alpha else array[:, :, [2, 1, 0, 3]]
    if array.dtype == np.float32:
        array = np.rint(np.clip(array, 0, 1) * 65535).astype(np.uint16)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(array)):
        raise SfumatoError(ErrorCode.BAD_PARAMS,
                           f"cannot write {path}: use a .png, .tif, .jpg or .webp name")


def _read(path: Path) -> np.ndarray:
    import cv2

    if not path.is_file():
        raise SfumatoError(ErrorCode.NOT_FOUND, f"{path} does not exist")
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise SfumatoError(ErrorCode.BAD_PARAMS,
                           f"{path} is not an image this tool can read (PNG, TIFF, JPEG, WebP)")
    return array
