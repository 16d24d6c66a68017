"""A file's colour description (ICC profile, gAMA, cHRM, sRGB), carried into a PNG written
from its pixels. OpenCV writes the pixels losslessly at 16 bits but drops these chunks, so
they are copied byte for byte (from a PNG) or made from the embedded profile (other files)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import BinaryIO

SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOUR_CHUNKS = (b"iCCP", b"gAMA", b"cHRM", b"sRGB", b"cICP")


def colour_chunks(path: Path, icc_profile: bytes | None) -> list[bytes]:
    """The colour chunks of `path` as whole chunks (length, type, data, CRC): a PNG's own,
    or an iCCP chunk holding another format's embedded profile."""
    with path.open("rb") as handle:
        head = handle.read(len(SIGNATURE))
        if head == SIGNATURE:
            return _read_chunks(handle)
    if icc_profile:
        return [_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc_profile))]
    return []


def _read_chunks(handle: BinaryIO) -> list[bytes]:
    found: list[bytes] = []
    while True:
        header = handle.read(8)
        if len(header) < 8:
            return found
        length, kind = struct.unpack(">I4s", header)
        if kind in (b"IDAT", b"IEND"):  # colour chunks come before the pixels
            return found
        body = handle.read(length + 4)
        if kind in COLOUR_CHUNKS and len(body) == length + 4:
            found.append(header + body)


def insert_chunks(png: Path, chunks: list[bytes]) -> None:
    """Put `chunks` right after the IHDR of the PNG file `png` (which has none of them)."""
    if not chunks:
        return
    data = png.read_bytes()
    if not data.startswith(SIGNATURE):
        return
    (ihdr_length,) = struct.unpack(">I", data[8:12])
    at = 8 + 12 + ihdr_length
    png.write_bytes(data[:at] + b"".join(chunks) + data[at:])


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
