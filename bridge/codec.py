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
import math
from collections.abc import Sequence
from typing import Any

from .errors import SfumatoError
from .protocol import MESSAGE_TYPES, PROTOCOL_MAJOR, PROTOCOL_NAME, ErrorCode, Message
from .raster import Buffer, Raster, RasterError, parse_layout, raster_from_description
from .shared_pixels import PixelCarrier, SharedPixelsError

SHARED_KEY = "shm"  # in a raster's description: where its pixels wait in shared memory

PREFIX = f"{PROTOCOL_NAME}/{PROTOCOL_MAJOR}".encode()
MAX_JSON_BYTES = 1 << 20
MAX_RASTERS = 16
MAX_ID_CHARS = 256
# JSON integers beyond int64 are refused at decode: no field needs them, and a long digit
# string would otherwise cost (or, past Python's 4,300-digit limit, raise) in int().
MAX_INT_DIGITS = 19
_INT_BOUND = 1 << 63


class ProtocolError(SfumatoError):
    """A frame set that cannot be understood."""

    def __init__(self, code: ErrorCode, message: str, request_id: str = "") -> None:
        super().__init__(code, message)
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


def request_id_of(frames: Sequence[Buffer]) -> str:
    """The request id in a frame set's header, or "" when there is none to read: for
    refusing a message without decoding (or opening the pixels of) the rest."""
    if len(frames) < 2 or bytes(frames[0]) != PREFIX:
        return ""
    try:
        request_id = _load(frames[1], "header").get("id")
    except ProtocolError:
        return ""
    return request_id if isinstance(request_id, str) and len(request_id) <= MAX_ID_CHARS else ""


def decode(
    frames: Sequence[Buffer],
    key: bytes | None = None,
    pixels: PixelCarrier | None = None,
    max_bytes: int | None = None,
) -> tuple[Message, list[Raster]]:
    """Parse a frame set; every way it can be wrong raises ProtocolError, nothing else.
    Shared-memory pixels are accepted only with `pixels` (the receiver's carrier).
    `max_bytes` bounds the message's rasters together, counted as stride x height, before
    any shared memory is opened."""
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
    if not isinstance(request_id, str) or len(request_id) > MAX_ID_CHARS:
        raise ProtocolError(ErrorCode.BAD_MESSAGE,
                            f"header has no string 'id' of at most {MAX_ID_CHARS} characters")
    descriptions = header.get("rasters", [])
    if not isinstance(descriptions, list) or len(descriptions) > MAX_RASTERS:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "header 'rasters' must be a short list",
                            request_id)
    if not isinstance(header.get("signed", False), bool):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "header 'signed' must be true or false",
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
    sizes = [_described_bytes(i, desc, request_id) for i, desc in enumerate(descriptions)]
    if max_bytes is not None and sum(sizes) > max_bytes:
        raise ProtocolError(
            ErrorCode.IMAGE_TOO_LARGE,
            f"the message's rasters take {sum(sizes)} bytes (stride x height), over this "
            f"daemon's {max_bytes} per message; send a smaller image or a selection",
            request_id,
        )
    rasters = []
    for i, desc in enumerate(descriptions):
        try:
            data = frames[3 + i]
            if SHARED_KEY in desc:
                data = _shared_data(desc, data, pixels, sizes[i])
            rasters.append(raster_from_description(desc, data))
        except (RasterError, SharedPixelsError, ValueError, OverflowError, OSError) as exc:
            raise ProtocolError(ErrorCode.BAD_FRAME, f"raster {i}: {exc}", request_id) from None
    if pixels is not None:
        pixels.note_header(header)
    return msg, rasters


_DESCRIPTION_INTS = ("width", "height", "stride")
_DESCRIPTION_STRS = ("layout", "colorspace")


def _described_bytes(index: int, desc: Any, request_id: str) -> int:
    """The bytes a raster description claims (stride x height), after checking its fields
    are of their JSON types: integers are integers (not "4", not 4.0, not true)."""
    if not isinstance(desc, dict):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"raster {index} description is not an "
                            "object", request_id)
    for name in _DESCRIPTION_INTS:
        value = desc.get(name, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"raster {index}: {name} must be a "
                                f"non-negative JSON integer, not {value!r:.40}", request_id)
    for name in _DESCRIPTION_STRS:
        if name in desc and not isinstance(desc[name], str):
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"raster {index}: {name} must be a "
                                "string", request_id)
    try:
        row = desc["width"] * parse_layout(desc["layout"]).bytes_per_pixel
        height = desc["height"]
    except (KeyError, RasterError) as exc:
        raise ProtocolError(ErrorCode.BAD_FRAME, f"raster {index}: {exc}", request_id) from None
    return int(max(desc.get("stride", 0), row) * height)


def _shared_data(desc: dict[str, Any], frame: Buffer, pixels: PixelCarrier | None,
                 size: int) -> Buffer:
    if pixels is None:
        raise SharedPixelsError("shared-memory pixels are not accepted here; send them as frames")
    if memoryview(frame).nbytes:
        raise SharedPixelsError("a raster in shared memory must come with an empty frame")
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
        obj = json.loads(bytes(data), parse_constant=_OutOfRange, parse_int=_bounded_int,
                         parse_float=_finite_float)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{what} frame is not JSON: {exc}",
                            request_id) from None
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{what} frame must be a JSON object",
                            request_id)
    bad = _first_out_of_range(obj)
    if bad is not None:  # refused after parsing, so that the reply can carry the header's id
        own_id = obj.get("id") if what == "header" else request_id
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{what} frame: {bad.text:.40} is out of "
                            "range; send finite numbers, integers within 64 bits",
                            own_id if isinstance(own_id, str) else "")
    return obj


class _OutOfRange:
    """A number no field can hold (NaN, Infinity, past 64 bits), kept as its text: found
    after parsing and refused, never turned into a value (int() of 5,000 digits raises)."""

    def __init__(self, text: str) -> None:
        self.text = text


def _bounded_int(text: str) -> int | _OutOfRange:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        return _OutOfRange(f"a {len(text)}-digit integer")
    value = int(text)
    return value if -_INT_BOUND <= value < _INT_BOUND else _OutOfRange(text)


def _finite_float(text: str) -> float | _OutOfRange:
    value = float(text)
    return value if math.isfinite(value) else _OutOfRange(text)


def _first_out_of_range(obj: Any) -> _OutOfRange | None:
    pending = [obj]  # not recursive: json.loads already bounded the depth, this need not
    while pending:
        item = pending.pop()
        if isinstance(item, _OutOfRange):
            return item
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return None


def _mac(key: bytes, frames: Sequence[Buffer]) -> bytes:
    digest = hmac.new(key, digestmod=hashlib.sha256)
    for frame in frames:
        view = memoryview(frame)
        digest.update(view.nbytes.to_bytes(8, "big"))
        digest.update(view)
    return digest.digest()
