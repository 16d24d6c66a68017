"""The object on a transparent background (Select object's "layer" output, as `sfumato
cutout`): the layer's own pixels, alpha times the mask, colour kept. Standard library only (it
runs in the editors' Python), so the two common cases are whole-buffer byte operations: a hard
mask (0/255: alpha AND the mask) and an opaque layer (alpha = the mask, by a byte table); only
a soft mask over a semi-transparent layer goes pixel by pixel."""

from __future__ import annotations

import struct

from .raster import Layout, Raster


def cut_out(pixels: Raster, mask: Raster) -> Raster:
    """`pixels` (any 4-channel layout) with alpha = alpha * mask / 255, rounded; `mask` is
    gray8 of the same size."""
    layout = pixels.layout
    if layout.channels != 4 or mask.layout is not Layout.GRAY8 or \
            (mask.width, mask.height) != (pixels.width, pixels.height):
        raise ValueError(f"cut_out takes RGBA pixels and a gray8 mask of their size, not "
                         f"{layout.value} {pixels.width}x{pixels.height} and {mask.layout.value} "
                         f"{mask.width}x{mask.height}")
    size = layout.bytes_per_channel
    step, first = 4 * size, 3 * size  # alpha is the 4th channel in every 4-channel layout
    data = bytearray(pixels.packed_bytes())
    m = mask.packed_bytes()
    count = len(m)
    full = _encode(layout, 255)
    if not m.translate(None, b"\x00\xff"):  # hard mask: keep alpha or clear it
        keep = int.from_bytes(m, "little")
        for k in range(size):
            alpha = int.from_bytes(data[first + k::step], "little")
            data[first + k::step] = (alpha & keep).to_bytes(count, "little")
    elif all(data[first + k::step].count(full[k]) == count for k in range(size)):
        for k in range(size):  # opaque: alpha is the mask, in the layout's own scale
            data[first + k::step] = m.translate(bytes(_encode(layout, v)[k] for v in range(256)))
    else:  # a soft mask over a semi-transparent layer
        for i, value in enumerate(m):
            at = first + i * step
            data[at : at + size] = _scaled(layout, bytes(data[at : at + size]), value)
    return Raster(pixels.width, pixels.height, layout, bytes(data),
                  colorspace=pixels.colorspace)


def _encode(layout: Layout, value: int) -> bytes:
    """Mask value 0..255 as an alpha of `layout` (little-endian, as rasters travel)."""
    size = layout.bytes_per_channel
    if size == 4:
        return struct.pack("<f", value / 255.0)
    return (value * (257 if size == 2 else 1)).to_bytes(size, "little")


def _scaled(layout: Layout, alpha: bytes, value: int) -> bytes:
    """One alpha times value / 255, rounded half up (as `sfumato cutout`)."""
    size = layout.bytes_per_channel
    if size == 4:
        return struct.pack("<f", struct.unpack("<f", alpha)[0] * value / 255.0)
    scaled = (int.from_bytes(alpha, "little") * value * 2 + 255) // 510
    return scaled.to_bytes(size, "little")
