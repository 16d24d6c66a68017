"""Text kept in a PNG file (iTXt chunks, UTF-8): how a CLI output carries its recipe
(bridge/recipe.py). Any PNG reader shows it; `sfumato inspect` prints it."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from sfumato.bridge.protocol import ErrorCode
from sfumato.core.errors import SfumatoError

SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEXT_KINDS = (b"tEXt", b"iTXt", b"zTXt")


def add_text(png: Path, key: str, text: str) -> None:
    """Put `text` under `key` into the PNG file `png` (right after its header), replacing the
    file whole."""
    data = png.read_bytes()
    if not data.startswith(SIGNATURE):
        raise SfumatoError(ErrorCode.BAD_PARAMS, f"{png} is not a PNG file; recipes are kept "
                           "in PNG outputs only")
    (ihdr_length,) = struct.unpack(">I", data[8:12])
    at = 8 + 12 + ihdr_length
    body = key.encode("latin-1") + b"\x00\x00\x00\x00\x00" + text.encode("utf-8")
    chunk = struct.pack(">I", len(body)) + b"iTXt" + body + struct.pack(
        ">I", zlib.crc32(b"iTXt" + body))
    draft = png.with_name(f".{png.name}.text-{os.getpid()}")
    try:
        draft.write_bytes(data[:at] + chunk + data[at:])
        os.replace(draft, png)
    finally:
        draft.unlink(missing_ok=True)


def read_text(path: Path) -> dict[str, str]:
    """Every text chunk of the PNG file `path`, by key; {} for other files."""
    with path.open("rb") as handle:
        if handle.read(len(SIGNATURE)) != SIGNATURE:
            return {}
        found: dict[str, str] = {}
        while True:
            header = handle.read(8)
            if len(header) < 8:
                return found
            length, kind = struct.unpack(">I4s", header)
            if kind == b"IEND":
                return found
            body = handle.read(length)
            handle.read(4)  # the CRC
            if kind in TEXT_KINDS:
                key, text = _text(kind, body)
                if key:
                    found[key] = text


def _text(kind: bytes, body: bytes) -> tuple[str, str]:
    key, _, rest = body.partition(b"\x00")
    try:
        if kind == b"tEXt":
            return key.decode("latin-1"), rest.decode("latin-1")
        if kind == b"zTXt":
            return key.decode("latin-1"), zlib.decompress(rest[1:]).decode("latin-1")
        compressed, rest = rest[0], rest[2:]  # flag, method
        _, _, rest = rest.partition(b"\x00")  # language tag
        _, _, rest = rest.partition(b"\x00")  # translated keyword
        text = zlib.decompress(rest) if compressed else rest
        return key.decode("latin-1"), text.decode("utf-8")
    except (zlib.error, UnicodeDecodeError, IndexError):
        return "", ""  # a damaged chunk is no recipe
