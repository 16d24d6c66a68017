"""The wire codec: every message round-trips; every malformed frame set is a typed error."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sfumato.bridge import codec
from sfumato.bridge.codec import ProtocolError
from sfumato.bridge.protocol import MESSAGE_TYPES, ErrorCode, Message, Submit
from sfumato.bridge.raster import Layout, Raster

pytestmark = pytest.mark.unit

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53),
                         st.text(max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=10,
)


def _value_for(field: dataclasses.Field, draw) -> object:
    default = field.default_factory() if field.default_factory is not dataclasses.MISSING \
        else field.default
    if default is None and str(field.type).startswith("dict"):
        return draw(st.one_of(st.none(), st.dictionaries(st.text(max_size=8), json_values,
                                                         max_size=3)))
    if default is None:
        return draw(st.one_of(st.none(), st.text(max_size=30)))
    if isinstance(default, bool):
        return draw(st.booleans())
    if isinstance(default, int):
        return draw(st.integers(-(2**31), 2**31))
    if isinstance(default, str):
        return draw(st.text(max_size=30))
    if isinstance(default, list):
        return draw(st.lists(json_values, max_size=3))
    return draw(st.dictionaries(st.text(max_size=8), json_values, max_size=4))


@st.composite
def messages(draw) -> Message:
    cls = draw(st.sampled_from(sorted(MESSAGE_TYPES.values(), key=lambda c: c.TYPE.value)))
    values = {f.name: _value_for(f, draw) for f in dataclasses.fields(cls) if f.name != "id"}
    return cls(id=draw(st.text(max_size=20)), **values)


@st.composite
def rasters(draw) -> Raster:
    layout = draw(st.sampled_from(list(Layout)))
    width, height = draw(st.integers(0, 9)), draw(st.integers(0, 9))
    pad = draw(st.integers(0, 5))
    stride = width * layout.bytes_per_pixel + pad
    data = draw(st.binary(min_size=stride * height, max_size=stride * height))
    return Raster(width, height, layout, data, stride)


@pytest.mark.parametrize("type_name", sorted(MESSAGE_TYPES))
def test_every_message_type_round_trips_with_a_raster(type_name: str) -> None:
    cls = MESSAGE_TYPES[type_name]
    message = cls(id="req-1")
    raster = Raster(3, 2, Layout.RGBA16, bytes(range(48)))
    decoded, out = codec.decode(codec.encode(message, [raster]))
    assert decoded == message
    assert out[0].describe() == raster.describe()
    assert bytes(out[0].data) == bytes(raster.data)


@settings(max_examples=150, deadline=None)
@given(messages(), st.lists(rasters(), max_size=3),
       st.one_of(st.none(), st.binary(min_size=1, max_size=16)))
def test_round_trip_property(message: Message, raster_list: list[Raster], key) -> None:
    decoded, out = codec.decode(codec.encode(message, raster_list, key), key)
    assert decoded == message
    assert [(r.describe(), bytes(r.data)) for r in out] == \
        [(r.describe(), bytes(r.data)) for r in raster_list]


def test_pixel_frames_are_the_callers_buffers_not_copies() -> None:
    pixels = bytearray(4 * 64 * 64)
    frames = codec.encode(Submit(id="x", task="upscale"), [Raster(64, 64, Layout.RGBA8, pixels)])
    assert frames[3] is pixels


def _valid_frames() -> list[bytes]:
    raster = Raster(2, 2, Layout.GRAY8, b"\x00\x01\x02\x03")
    return [bytes(f) for f in codec.encode(Submit(id="r", task="upscale"), [raster])]


def _expect_code(frames: list[bytes], code: ErrorCode, key: bytes | None = None) -> None:
    with pytest.raises(ProtocolError) as info:
        codec.decode(frames, key)
    assert info.value.code is code
    assert info.value.message


def test_wrong_version_says_to_update() -> None:
    frames = _valid_frames()
    frames[0] = b"sfumato/2"
    _expect_code(frames, ErrorCode.BAD_VERSION)


def test_bad_json_missing_frames_wrong_size_unknown_type() -> None:
    frames = _valid_frames()
    _expect_code([frames[0], b"{not json", frames[2], frames[3]], ErrorCode.BAD_MESSAGE)
    _expect_code(frames[:3], ErrorCode.BAD_FRAME)  # the pixel frame is missing
    _expect_code(frames[:3] + [b"\x00" * 3], ErrorCode.BAD_FRAME)  # wrong pixel-frame size
    header = json.loads(frames[1])
    header["type"] = "teleport"
    _expect_code([frames[0], json.dumps(header).encode(), *frames[2:]], ErrorCode.UNKNOWN_TYPE)


def test_wrong_field_type_is_rejected_and_unknown_fields_tolerated() -> None:
    frames = _valid_frames()
    content = json.loads(frames[2])
    content["future_field"] = {"anything": 1}
    decoded, _ = codec.decode([frames[0], frames[1], json.dumps(content).encode(), frames[3]])
    assert isinstance(decoded, Submit) and decoded.task == "upscale"
    content["params"] = [1, 2]
    _expect_code([frames[0], frames[1], json.dumps(content).encode(), frames[3]],
                 ErrorCode.BAD_MESSAGE)


def test_signature_checked_when_a_key_is_set() -> None:
    raster = Raster(1, 1, Layout.GRAY8, b"\x07")
    signed = [bytes(f) for f in codec.encode(Submit(id="s"), [raster], key=b"secret")]
    codec.decode(signed, b"secret")
    tampered = signed[:3] + [b"\x08"] + signed[4:]
    _expect_code(tampered, ErrorCode.AUTH_FAILED, b"secret")
    _expect_code(_valid_frames(), ErrorCode.AUTH_FAILED, b"secret")  # unsigned


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=7))
def test_arbitrary_frames_give_typed_errors_only(frames: list[bytes]) -> None:
    try:
        codec.decode(frames)
    except ProtocolError as exc:
        assert isinstance(exc.code, ErrorCode)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_valid_frames_give_typed_errors_only(data) -> None:
    frames = _valid_frames()
    index = data.draw(st.integers(0, len(frames) - 1))
    frames[index] = data.draw(st.binary(max_size=80))
    if data.draw(st.booleans()):
        frames.insert(data.draw(st.integers(0, len(frames))), data.draw(st.binary(max_size=8)))
    try:
        message, out = codec.decode(frames)
    except ProtocolError as exc:
        assert isinstance(exc.code, ErrorCode)
    else:
        assert isinstance(message, Message)
        assert all(len(bytes(r.data)) == r.nbytes for r in out)


@settings(max_examples=200, deadline=None)
@given(json_values, json_values)
def test_any_json_header_and_content_give_typed_errors_only(header, content) -> None:
    frames = [codec.PREFIX, json.dumps(header).encode(), json.dumps(content).encode()]
    try:
        codec.decode(frames)
    except ProtocolError as exc:
        assert isinstance(exc.code, ErrorCode)


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"9" * 5000,
                                    b"-" + b"9" * 5000, b"9223372036854775808"])
@pytest.mark.parametrize("where", ["header", "content", "params"])
def test_numbers_no_field_can_hold_are_refused_with_the_requests_id(number: bytes,
                                                                    where: str) -> None:
    header = b'{"type":"submit","id":"q","rasters":[]' + (
        b',"n":' + number if where == "header" else b"") + b"}"
    content = {"header": b'{"task":"upscale"}', "content": b'{"task":"upscale","n":' + number
               + b"}", "params": b'{"task":"upscale","params":{"a":[{"b":' + number + b"}]}}"}
    with pytest.raises(ProtocolError) as info:
        codec.decode([codec.PREFIX, header, content[where]])
    assert info.value.code == ErrorCode.BAD_MESSAGE and info.value.request_id == "q"


def test_the_largest_64_bit_integers_and_finite_floats_pass() -> None:
    content = b'{"task":"upscale","params":{"a":9223372036854775807,"b":-9223372036854775808,' \
        b'"c":1.7976931348623157e308,"d":-0.0}}'
    message, _ = codec.decode([codec.PREFIX, b'{"type":"submit","id":"q"}', content])
    assert isinstance(message, Submit)
    assert message.params["a"] == 2**63 - 1 and message.params["b"] == -(2**63)


@pytest.mark.parametrize("raster,size", [
    ({"width": 4, "height": 2, "layout": "rgba8", "stride": 64}, 128),  # stride x height
    ({"width": 4, "height": 2, "layout": "rgba8"}, 32),
])
def test_a_messages_raster_bytes_count_stride_times_height(raster: dict, size: int) -> None:
    header = json.dumps({"type": "ping", "id": "q", "rasters": [raster]}).encode()
    with pytest.raises(ProtocolError) as info:
        codec.decode([codec.PREFIX, header, b"{}", bytes(size)], max_bytes=size - 1)
    assert info.value.code == ErrorCode.IMAGE_TOO_LARGE and info.value.request_id == "q"
    codec.decode([codec.PREFIX, header, b"{}", bytes(size)], max_bytes=size)
