"""Image files <-> rasters for the CLI: 8- and 16-bit PNG/TIFF, JPEG, WebP; grey, RGB, RGBA.

OpenCV reads and writes 16-bit files losslessly where Pillow would drop to 8 bits. A file's
header is read first (`probe`), so an image over the limit is refused before it is decoded,
and what the output should keep of it (grey, alpha, colour profile) is known.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.raster import Layout, Raster
from sfumato.core.errors import SfumatoError
from sfumato.core.pixels.arrays import array_to_raster, raster_to_array, rgba_layout_for
from sfumato.core.pixels.png_colour import colour_chunks, insert_chunks

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"}
GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


@dataclass(frozen=True)
class ImageInfo:
    """An image file as its header describes it."""

    path: Path
    width: int
    height: int
    grey: bool
    alpha: bool
    colour: list[bytes] = field(default_factory=list)  # PNG colour chunks to carry over


def probe(path: Path, max_pixels: int | None = None) -> ImageInfo:
    """Read the header only; refuse an image larger than `max_pixels` before decoding it."""
    from PIL import Image

    if not path.is_file():
        raise SfumatoError(ErrorCode.NOT_FOUND, f"{path} does not exist")
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # Pillow's own bomb check: ours below names the real limit
    try:
        with Image.open(path) as image:
            width, height = image.size
            grey = image.mode in GREY_MODES
            alpha = "A" in image.getbands() or "transparency" in image.info
            icc = image.info.get("icc_profile")
    except (OSError, SyntaxError, ValueError):  # e.g. a float RGB TIFF: only OpenCV reads it
        return _probe_decoded(path, max_pixels)
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    _check_size(path, width, height, max_pixels)
    return ImageInfo(path, width, height, grey, alpha, colour_chunks(path, icc))


def _probe_decoded(path: Path, max_pixels: int | None) -> ImageInfo:
    array = _read(path)
    height, width = array.shape[:2]
    _check_size(path, width, height, max_pixels)
    channels = 1 if array.ndim == 2 else array.shape[2]
    return ImageInfo(path, width, height, channels == 1, channels in (2, 4))


def _check_size(path: Path, width: int, height: int, max_pixels: int | None) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise SfumatoError(
            ErrorCode.IMAGE_TOO_LARGE,
            f"{path} is {width}×{height} ({width * height / 1e6:.0f} MP); the daemon takes at "
            f"most {max_pixels / 1e6:.0f} MP per image (max_pixels = {max_pixels} in "
            "SFUMATO_HOME/config.toml): scale it down first, or raise max_pixels",
        )


def read_rgba(path: Path, max_pixels: int | None = None) -> Raster:
    """Any supported image as RGBA (8 or 16 bit, or float32 for float TIFFs)."""
    probe(path, max_pixels)
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


def read_mask(path: Path, max_pixels: int | None = None) -> Raster:
    """A selection mask as gray8: white = selected, black = kept, grey = partly."""
    probe(path, max_pixels)
    array = _read(path)
    if array.ndim == 3:
        array = array[:, :, 0] if array.shape[2] < 3 else array[:, :, :3].mean(axis=2)
    if array.dtype == np.uint16:
        array = array / 257.0
    return array_to_raster(np.rint(array).astype(np.uint8), Layout.GRAY8)


def has_alpha_channel(path: Path) -> bool:
    """Whether the file itself stores alpha (read from its header only)."""
    return probe(path).alpha


def write_image(path: Path, raster: Raster, *, drop_alpha: bool = False,
                like: ImageInfo | None = None, overwrite: bool = True) -> None:
    """Write a raster, whole or not at all. `like` is the input it came from: a grey input
    gives a grey file, one without alpha an RGB one, and a PNG keeps its colour profile.
    Without `overwrite` an existing file is refused."""
    import cv2

    if not overwrite and path.exists():
        raise SfumatoError(ErrorCode.BAD_PARAMS,
                           f"{path} exists: pass --overwrite to replace it, or choose -o")
    drop_alpha = drop_alpha or (like is not None and not like.alpha)
    array = raster_to_array(raster)
    if array.dtype == np.float32:
        array = np.rint(np.clip(array, 0, 1) * 65535).astype(np.uint16)
    if array.shape[2] == 4:
        if like is not None and like.grey and drop_alpha:
            # the model may tint a grey picture slightly: its grey comes back as one channel
            array = np.rint(array[:, :, :3].mean(axis=2, dtype=np.float64)).astype(array.dtype)
        else:  # RGBA -> OpenCV's BGRA (or BGR)
            array = array[:, :, [2, 1, 0]] if drop_alpha else array[:, :, [2, 1, 0, 3]]
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.stem}.part-{os.getpid()}{path.suffix}")
    try:
        if not cv2.imwrite(str(draft), np.ascontiguousarray(array)):
            raise SfumatoError(ErrorCode.BAD_PARAMS,
                               f"cannot write {path}: use a .png, .tif, .jpg or .webp name")
        if like is not None and path.suffix.lower() == ".png":
            insert_chunks(draft, like.colour)
        os.replace(draft, path)
    finally:
        draft.unlink(missing_ok=True)


def _read(path: Path) -> np.ndarray:
    import cv2

    if not path.is_file():
        raise SfumatoError(ErrorCode.NOT_FOUND, f"{path} does not exist")
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise SfumatoError(ErrorCode.BAD_PARAMS,
                           f"{path} is not an image this tool can read (PNG, TIFF, JPEG, WebP)")
    return array
