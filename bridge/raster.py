"""Pixels as a value: size, layout, stride and the bytes, with no numpy needed.

Alpha is straight (not premultiplied); 8- and 16-bit values are sRGB-encoded, float32 values
are linear-light sRGB primaries, as GIMP and Krita store them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from .errors import SfumatoError
from .protocol import ErrorCode


class Layout(str, Enum):
    RGBA8 = "rgba8"
    BGRA8 = "bgra8"  # Krita's pixelData() order for RGBA/U8
    RGBA16 = "rgba16"
    RGBAF32 = "rgbaf32"
    GRAY8 = "gray8"  # selection masks: 0 = keep, 255 = selected
    GRAY16 = "gray16"
    GRAYF32 = "grayf32"

    @property
    def channels(self) -> int:
        return 1 if self.value.startswith("gray") else 4

    @property
    def bytes_per_channel(self) -> int:
        if self.value.endswith("f32"):
            return 4
        return 2 if self.value.endswith("16") else 1

    @property
    def bytes_per_pixel(self) -> int:
        return self.channels * self.bytes_per_channel


class RasterError(SfumatoError, ValueError):
    """A raster whose description does not match its bytes."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.BAD_MESSAGE) -> None:
        super().__init__(code, message)


Buffer = bytes | bytearray | memoryview


@dataclass(frozen=True)
class Raster:
    width: int
    height: int
    layout: Layout
    data: Buffer
    stride: int = 0  # bytes per row; 0 means tightly packed
    colorspace: str = "srgb"

    def __post_init__(self) -> None:
        if not isinstance(self.layout, Layout):
            object.__setattr__(self, "layout", parse_layout(self.layout))
        if self.width < 0 or self.height < 0:
            raise RasterError(f"raster size {self.width}x{self.height} is negative")
        if self.stride == 0:
            object.__setattr__(self, "stride", self.width * self.layout.bytes_per_pixel)
        if self.stride < self.width * self.layout.bytes_per_pixel:
            raise RasterError(
                f"stride {self.stride} is shorter than a {self.width}-pixel {self.layout.value} row"
            )
        size = memoryview(self.data).nbytes
        if size != self.stride * self.height:
            raise RasterError(
                f"a {self.width}x{self.height} {self.layout.value} raster with stride "
                f"{self.stride} needs {self.stride * self.height} bytes, got {size}"
            )

    @property
    def nbytes(self) -> int:
        return self.stride * self.height

    @property
    def is_empty(self) -> bool:
        return self.width == 0 or self.height == 0

    def describe(self) -> dict[str, Any]:
        """The JSON-safe description that travels in the header beside the pixel frame."""
        return {
            "width": self.width,
            "height": self.height,
            "layout": self.layout.value,
            "stride": self.stride,
            "colorspace": self.colorspace,
        }

    def packed_bytes(self) -> bytes:
        """The pixels with no row padding (copies only when the stride has padding)."""
        row = self.width * self.layout.bytes_per_pixel
        view = memoryview(self.data).cast("B")
        if self.stride == row:
            return bytes(view)
        return b"".join(view[y * self.stride : y * self.stride + row] for y in range(self.height))


def parse_layout(value: Any) -> Layout:
    try:
        return Layout(value)
    except ValueError:
        known = ", ".join(layout.value for layout in Layout)
        raise RasterError(f"unknown pixel layout {value!r}; use one of {known}") from None


def raster_from_description(desc: dict[str, Any], data: Buffer) -> Raster:
    try:
        return Raster(
            width=int(desc["width"]),
            height=int(desc["height"]),
            layout=parse_layout(desc["layout"]),
            data=data,
            stride=int(desc.get("stride", 0)),
            colorspace=str(desc.get("colorspace", "srgb")),
        )
    except (KeyError, TypeError) as exc:
        raise RasterError(f"raster description {desc!r} is incomplete: {exc}") from None
