"""Krita's pixel storage <-> the wire's `Raster` layouts, in pure Python (Krita's Python has
no numpy).

How Krita 5.1 stores an RGBA layer (`Node.pixelData`, checked in the real Krita):
  U8   B,G,R,A   bytes                       U16  B,G,R,A   uint16, native (little) endian
  F16  R,G,B,A   half floats                 F32  R,G,B,A   float32
Whether the values are linear light or sRGB-encoded depends on the profile, not the depth:
Krita's 16-bit integer and float defaults are linear ("sRGB-elle-V2-g10.icc"), 8-bit ones
sRGB-encoded ("...-srgbtrc.icc"). The wire wants 8/16-bit sRGB-encoded and float linear
(bridge/raster.py), so the transfer curve is converted here where the two disagree.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import lru_cache

from sfumato.bridge.errors import SfumatoError
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.raster import Layout, Raster

DEPTHS = ("U8", "U16", "F16", "F32")
# Prefer the layout that keeps the layer's precision, then the closest one.
_PREFERRED: dict[str, tuple[Layout, ...]] = {
    "U8": (Layout.BGRA8, Layout.RGBA8, Layout.RGBA16, Layout.RGBAF32),
    "U16": (Layout.RGBA16, Layout.RGBAF32, Layout.RGBA8),
    "F16": (Layout.RGBAF32, Layout.RGBA16, Layout.RGBA8),
    "F32": (Layout.RGBAF32, Layout.RGBA16, Layout.RGBA8),
}


class UnsupportedPixels(SfumatoError, ValueError):
    """A colour model or depth the plug-in cannot translate."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.UNSUPPORTED_LAYOUT, message)


@dataclass(frozen=True)
class StorageFormat:
    depth: str  # "U8" | "U16" | "F16" | "F32"
    linear: bool  # the profile's transfer curve is linear light

    @property
    def bytes_per_pixel(self) -> int:
        return {"U8": 4, "U16": 8, "F16": 8, "F32": 16}[self.depth]


def storage_format(model: str, depth: str, profile: str) -> StorageFormat:
    """The format of a layer, or UnsupportedPixels with what the artist can do about it."""
    if model != "RGBA":
        raise UnsupportedPixels(
            f"sfumato works on RGB images; this one is {model}/{depth}. Convert it with "
            "Image > Convert Image Color Space… to RGB/Alpha first. The image is unchanged.")
    if depth not in DEPTHS:
        raise UnsupportedPixels(f"sfumato cannot read {depth} RGB layers; convert the image "
                                "to 8/16-bit integer or 16/32-bit float. The image is unchanged.")
    name = profile.lower()
    return StorageFormat(depth, "g10" in name or "linear" in name)


def wire_layout(fmt: StorageFormat, accepted: Collection[Layout]) -> Layout:
    for layout in _PREFERRED[fmt.depth]:
        if layout in accepted:
            return layout
    raise UnsupportedPixels("the daemon accepts no RGBA layout this plug-in can send")


def from_storage(data: bytes, width: int, height: int, fmt: StorageFormat,
                 accepted: Collection[Layout]) -> Raster:
    """Krita's bytes for a `width` x `height` rectangle as a Raster of an accepted layout."""
    layout = wire_layout(fmt, accepted)
    if fmt.depth == "U8" and not fmt.linear and layout is Layout.BGRA8:
        return Raster(width, height, Layout.BGRA8, data)  # Krita's own order: no copy
    pixels = _decode(data, fmt)
    return Raster(width, height, layout, _encode_wire(pixels, layout))


def to_storage(raster: Raster, fmt: StorageFormat) -> bytes:
    """A wire raster as the bytes `Node.setPixelData` wants for a layer of `fmt`."""
    if raster.layout is Layout.BGRA8 and fmt.depth == "U8" and not fmt.linear:
        return raster.packed_bytes()
    return _encode_storage(_decode_wire(raster), fmt)


# --- an intermediate form: R,G,B,A in one of three kinds ---------------------------------
# ("u8" | "u16", sRGB-encoded integers) or ("f32", linear floats); alpha is never curved.


@dataclass(frozen=True)
class _Pixels:
    kind: str
    values: array


def _decode(data: bytes, fmt: StorageFormat) -> _Pixels:
    if fmt.depth == "U8":
        values = _swap_red_blue(_array("B", data))
        if fmt.linear:
            values = _map_colour(values, _lut8(to_srgb=True))
        return _Pixels("u8", values)
    if fmt.depth == "U16":
        values = _swap_red_blue(_array("H", data))
        if fmt.linear:
            values = _map_colour(values, _lut16(to_srgb=True))
        return _Pixels("u16", values)
    if fmt.depth == "F16":
        floats = array("f", struct.unpack(f"<{len(data) // 2}e", data))
    else:
        floats = _array("f", data)
    if not fmt.linear:  # sRGB-encoded floats: the wire's floats are linear
        floats = _map_colour_fn(floats, _srgb_to_linear)
    return _Pixels("f32", floats)


def _encode_storage(pixels: _Pixels, fmt: StorageFormat) -> bytes:
    if fmt.depth in ("U8", "U16"):
        kind = "u8" if fmt.depth == "U8" else "u16"
        values = _convert(pixels, kind).values
        if fmt.linear:
            values = _map_colour(values, _lut8(False) if kind == "u8" else _lut16(False))
        return _bytes(_swap_red_blue(values))
    floats = _convert(pixels, "f32").values
    if not fmt.linear:
        floats = _map_colour_fn(floats, _linear_to_srgb)
    if fmt.depth == "F16":
        return struct.pack(f"<{len(floats)}e", *(max(-65504.0, min(65504.0, v))
                                                  for v in floats))
    return _bytes(floats)


def _decode_wire(raster: Raster) -> _Pixels:
    data = raster.packed_bytes()
    layout = raster.layout
    if layout is Layout.BGRA8:
        return _Pixels("u8", _swap_red_blue(_array("B", data)))
    if layout is Layout.RGBA8:
        return _Pixels("u8", _array("B", data))
    if layout is Layout.RGBA16:
        return _Pixels("u16", _array("H", data))
    if layout is Layout.RGBAF32:
        return _Pixels("f32", _array("f", data))
    raise UnsupportedPixels(f"cannot make a layer from {layout.value} pixels")


def _encode_wire(pixels: _Pixels, layout: Layout) -> bytes:
    if layout is Layout.BGRA8:
        return _bytes(_swap_red_blue(_convert(pixels, "u8").values))
    kind = {Layout.RGBA8: "u8", Layout.RGBA16: "u16", Layout.RGBAF32: "f32"}[layout]
    return _bytes(_convert(pixels, kind).values)


def _convert(pixels: _Pixels, kind: str) -> _Pixels:
    """Change the kind; sRGB-encoded integers <-> linear floats crosses the curve."""
    if pixels.kind == kind:
        return pixels
    values = pixels.values
    if pixels.kind == "u8" and kind == "u16":
        return _Pixels(kind, array("H", (v * 257 for v in values)))
    if pixels.kind == "u16" and kind == "u8":
        return _Pixels(kind, array("B", ((v * 255 + 32767) // 65535 for v in values)))
    if kind == "f32":  # integers (sRGB) -> linear floats
        table = _to_float_lut(pixels.kind)
        top = 255.0 if pixels.kind == "u8" else 65535.0
        floats = array("f", map(table.__getitem__, values))
        floats[3::4] = array("f", (v / top for v in values[3::4]))
        return _Pixels(kind, floats)
    # linear floats -> sRGB-encoded integers
    top = 255 if kind == "u8" else 65535
    encoded = array("B" if kind == "u8" else "H",
                    (_quantize(_linear_to_srgb(v), top) for v in values))
    encoded[3::4] = array(encoded.typecode, (_quantize(v, top) for v in values[3::4]))
    return _Pixels(kind, encoded)


# --- small pieces -------------------------------------------------------------------------


def _array(typecode: str, data: bytes) -> array:
    values = array(typecode)
    values.frombytes(data)
    if sys.byteorder == "big" and values.itemsize > 1:
        values.byteswap()  # Krita and the wire are little-endian
    return values


def _bytes(values: array) -> bytes:
    if sys.byteorder == "big" and values.itemsize > 1:
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def _swap_red_blue(values: array) -> array:
    out = array(values.typecode, values)
    out[0::4], out[2::4] = values[2::4], values[0::4]
    return out


def _map_colour(values: array, table: array) -> array:
    """`table` applied to R, G and B; alpha kept."""
    out = array(values.typecode, map(table.__getitem__, values))
    out[3::4] = values[3::4]
    return out


def _map_colour_fn(values: array, fn: Callable[[float], float]) -> array:
    out = array(values.typecode, map(fn, values))
    out[3::4] = values[3::4]
    return out


def _quantize(value: float, top: int) -> int:
    return int(min(1.0, max(0.0, value)) * top + 0.5)


def _srgb_to_linear(v: float) -> float:
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


def _linear_to_srgb(v: float) -> float:
    if v <= 0.0031308:
        return v * 12.92
    return 1.055 * v ** (1 / 2.4) - 0.055


@lru_cache(maxsize=4)
def _lut8(to_srgb: bool) -> array:
    curve = _linear_to_srgb if to_srgb else _srgb_to_linear
    return array("B", (_quantize(curve(i / 255), 255) for i in range(256)))


@lru_cache(maxsize=4)
def _lut16(to_srgb: bool) -> array:
    curve = _linear_to_srgb if to_srgb else _srgb_to_linear
    return array("H", (_quantize(curve(i / 65535), 65535) for i in range(65536)))


@lru_cache(maxsize=4)
def _to_float_lut(kind: str) -> array:
    top = 255 if kind == "u8" else 65535
    return array("f", (_srgb_to_linear(i / top) for i in range(top + 1)))
