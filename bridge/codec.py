"""Messages and rasters to ZeroMQ frames and back. Never pickle.

Frames: [b"sfumato/1", header JSON, content JSON, pixel frame per raster, (HMAC)].
The header holds the type, the id and each raster's description; the content holds the
message's own fields. Pixel frames are the rasters' buffers themselves, so the sender can
hand them to zmq with copy=False. With a key, a last frame holds an HMAC-SHA256 over all
the others.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any

from .protocol import MESSAGE_TYPES, PROTOCOL_MAJOR, PROTOCOL_NAME, ErrorCode, Message
from .raster import Buffer, Raster, RasterError, parse_layout, raster_from_description
from .shared_pixels import PixelCarrier, SharedPixelsError

SHARED_KEY = "shm"  # in a raster's description: where its pixels wait in shared memory

PREFIX = f"{PROTOCOL_NAME}/{PROTOCOL_MAJOR}".encode()
MAX_JSON_BYTES = 1 << 20
MAX_RASTERS = 16


class ProtocolError(Exception):
    """A frame set that cannot be understood; `code` is an ErrorCode value."""

    def __init__(self, code: ErrorCode, message: str, request_id: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


def encode(
    msg: Message,
    rasters: Sequence[Raster] = (),
    key: bytes | None = None,
    pixels: PixelCarrier | None = None,
) -> list[Buffer]:
    """With `pixels` (a same-machine peer), large rasters travel through shared memory: the
    description names the memory file and the raster's frame is empty."""
    descriptions, data = [], []
    for raster in rasters:
        desc = raster.describe()
        ref = pixels.place(raster) if pixels is not None else None
        if ref is not None:
            desc[SHARED_KEY] = ref
        descriptions.append(desc)
        data.append(b"" if ref is not None else raster.data)
    header = {
        "type": msg.TYPE.value,
        "id": msg.id,
        "rasters": descriptions,
        "signed": key is not None,
        **(pixels.header_fields() if pixels is not None else {}),
    }
    content = {k: v for k, v in msg.fields().items() if k != "id"}
    frames: list[Buffer] = [PREFIX, _dump(header), _dump(content)]
    frames.extend(data)
    if key is not None:
        frames.append(_mac(key, frames))
    return frames


def decode(
    frames: Sequence[Buffer], key: bytes | None = None, pixels: PixelCarrier | None = None
) -> tuple[Message, list[Raster]]:
    """Parse a frame set; every way it can be wrong raises ProtocolError, nothing else.
    Shared-memory pixels are accepted only with `pixels` (the receiver's carrier)."""
    if len(frames) < 3:
        raise ProtocolError(ErrorCode.BAD_FRAME, f"expected at least 3 frames, got {len(frames)}")
    prefix = bytes(frames[0])
    if prefix != PREFIX:
        if prefix.startswith(PROTOCOL_NAME.encode() + b"/"):
            raise ProtocolError(
                ErrorCode.BAD_VERSION,
                f"protocol {prefix.decode(errors='replace')} is not {PREFIX.decode()}: "
                "update the plug-in and the daemon to the same sfumato release",
            )
        raise ProtocolError(ErrorCode.BAD_FRAME, "not a sfumato message (bad first frame)")
    header = _load(frames[1], "header")
    request_id = header.get("id")
    if not isinstance(request_id, str):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "header has no string 'id'")
    descriptions = header.get("rasters", [])
    if not isinstance(descriptions, list) or len(descriptions) > MAX_RASTERS:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "header 'rasters' must be a short list",
                            request_id)
    signed = header.get("signed") is True
    expected = 3 + len(descriptions) + (1 if signed else 0)
    if len(frames) != expected:
        raise ProtocolError(
            ErrorCode.BAD_FRAME,
            f"header announces {len(descriptions)} raster(s) but {len(frames)} frames arrived",
            request_id,
        )
    if key is not None:
        if not signed or not hmac.compare_digest(bytes(frames[-1]), _mac(key, frames[:-1])):
            raise ProtocolError(ErrorCode.AUTH_FAILED,
                                "message signature missing or wrong: check the shared key",
                                request_id)
    cls = MESSAGE_TYPES.get(str(header.get("type")))
    if cls is None:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE,
                            f"unknown message type {header.get('type')!r}", request_id)
    content = _load(frames[2], "content", request_id)
    msg = _build(cls, request_id, content)
    rasters = []
    for i, desc in enumerate(descriptions):
        if not isinstance(desc, dict):
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"raster {i} description is not an object",
                                request_id)
        try:
            data = frames[3 + i]
            if SHARED_KEY in desc:
                data = _shared_data(desc, data, pixels)
            rasters.append(raster_from_description(desc, data))
        except (RasterError, SharedPixelsError, ValueError, OverflowError) as exc:
            raise ProtocolError(ErrorCode.BAD_FRAME, f"raster {i}: {exc}", request_id) from None
    if pixels is not None:
        pixels.note_header(header)
    return msg, rasters


def _shared_data(desc: dict[str, Any], frame: Buffer, pixels: PixelCarrier | None) -> Buffer:
    if pixels is None:
        raise SharedPixelsError("shared-memory pixels are not accepted here; send them as frames")
    if memoryview(frame).nbytes:
        raise SharedPixelsError("a raster in shared memory must come with an empty frame")
    try:
        row = int(desc.get("stride") or 0) or int(desc["width"]) * parse_layout(
            desc["layout"]).bytes_per_pixel
        size = row * int(desc["height"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SharedPixelsError(f"raster description {desc!r} is incomplete: {exc}") from None
    return pixels.open(desc[SHARED_KEY], size)


def _build(cls: type[Message], request_id: str, content: dict[str, Any]) -> Message:
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name == "id" or f.name not in content:
            continue  # absent fields take their defaults; unknown ones are ignored
        value = content[f.name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if not _same_kind(default, value, str(f.type)):
            raise ProtocolError(
                ErrorCode.BAD_MESSAGE,
                f"{cls.TYPE.value}.{f.name} has the wrong type ({type(value).__name__})",
                request_id,
            )
        values[f.name] = value
    return cls(id=request_id, **values)


_OPTIONAL_KINDS = {"str": str, "dict": dict, "list": list, "int": int}


def _same_kind(default: Any, value: Any, annotation: str) -> bool:
    if default is None:  # an optional field: None, or what its annotation names
        kind = _OPTIONAL_KINDS.get(annotation.split("[")[0].split("|")[0].strip(), str)
        return value is None or (isinstance(value, kind) and not isinstance(value, bool))
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int)
    return isinstance(value, type(default))


def _dump(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def _load(frame: Buffer, what: str, request_id: str = "") -> dict[str, Any]:
    data = memoryview(frame)
    if data.nbytes > MAX_JSON_BYTES:
        raise ProtocolError(ErrorCode.BAD_FRAME, f"{what} frame is over {MAX_JSON_BYTES} bytes",
                            request_id)
    try:
        obj = json.loads(bytes(data))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{what} frame is not JSON: {exc}",
                            request_id) from None
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{what} frame must be a JSON object",
                            request_id)
    return obj


def _mac(key: bytes, frames: Sequence[Buffer]) -> bytes:
    digest = hmac.new(key, digestmod=hashlib.sha256)
    for frame in frames:
        view = memoryview(frame)
        digest.update(view.nbytes.to_bytes(8, "big"))
        digest.update(view)
    return digest.digest()
