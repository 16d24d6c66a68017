"""Rasters <-> numpy arrays on the daemon side. Arrays are (H, W, C), channels in RGBA order."""

from __future__ import annotations

import numpy as np
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.raster import Layout, Raster
from sfumato.core.errors import SfumatoError

_DTYPES: dict[int, np.dtype] = {1: np.dtype(np.uint8), 2: np.dtype("<u2"), 4: np.dtype("<f4")}


def raster_to_array(raster: Raster) -> np.ndarray:
    """A (H, W, C) array viewing the raster's bytes where it can (BGRA is reordered to RGBA)."""
    layout = raster.layout
    dtype = _DTYPES[layout.bytes_per_channel]
    flat = np.frombuffer(raster.data, dtype=np.uint8)
    rows = flat.reshape(raster.height, raster.stride)[:, : raster.width * layout.bytes_per_pixel]
    pixels = np.ascontiguousarray(rows).view(dtype)  # a view when rows are already packed
    array = pixels.reshape(raster.height, raster.width, layout.channels)
    if layout is Layout.BGRA8:
        array = array[:, :, [2, 1, 0, 3]]
    return array


def array_to_raster(array: np.ndarray, layout: Layout) -> Raster:
    """Pack an (H, W, C) array of the layout's channel count and dtype into a raster."""
    if array.ndim == 2:
        array = array[:, :, None]
    height, width, channels = array.shape
    if channels != layout.channels:
        raise SfumatoError(ErrorCode.INTERNAL, f"{channels} channels cannot be {layout.value}")
    if layout is Layout.BGRA8:
        array = array[:, :, [2, 1, 0, 3]]
    data = np.ascontiguousarray(array, dtype=_DTYPES[layout.bytes_per_channel])
    return Raster(width, height, layout, memoryview(data).cast("B"))  # type: ignore[arg-type]


def to_unit_float(array: np.ndarray) -> np.ndarray:
    """uint8/uint16/float32 pixels as float32 in [0, 1] (float input is clipped, not rescaled)."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    return np.clip(array.astype(np.float32), 0.0, 1.0)


def from_unit_float(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float32 in [0, 1] back to `dtype`, rounding to nearest."""
    clipped = np.clip(array, 0.0, 1.0)
    if dtype == np.uint8:
        return np.rint(clipped * 255.0).astype(np.uint8)
    if dtype == np.uint16:
        return np.rint(clipped * 65535.0).astype(np.uint16)
    return clipped.astype(np.float32)


def rgba_layout_for(dtype: np.dtype) -> Layout:
    return {1: Layout.RGBA8, 2: Layout.RGBA16, 4: Layout.RGBAF32}[np.dtype(dtype).itemsize]
