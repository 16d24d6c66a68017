"""Pixels through shared memory: what travels, what is refused, and when files are let go.
No sockets here: the codec with both sides' carriers in one process."""

from __future__ import annotations

import gc
import json
import os
import tempfile
import time

import pytest
from sfumato.bridge import codec, shared_pixels
from sfumato.bridge.codec import ProtocolError
from sfumato.bridge.protocol import ErrorCode, Ping, Pong
from sfumato.bridge.raster import Layout, Raster
from sfumato.bridge.shared_pixels import (
    ClientPixels,
    DaemonPixels,
    Segment,
    SharedPixelsError,
    is_local_endpoint,
    open_reference,
)

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(not shared_pixels.available(), reason="needs Linux memfd and /proc"),
]


def _layer(width: int, height: int, layout: Layout = Layout.RGBA8) -> Raster:
    size = width * height * layout.bytes_per_pixel
    return Raster(width, height, layout, bytes((i * 37 + i // 251) % 256 for i in range(size)))


@pytest.mark.parametrize("layout", [Layout.RGBA8, Layout.RGBA16, Layout.RGBAF32])
def test_request_and_reply_pixels_arrive_bit_identical_without_frames(layout: Layout) -> None:
    client, daemon = ClientPixels(min_bytes=1), DaemonPixels(min_bytes=1)
    layer = _layer(96, 64, layout)
    frames = codec.encode(Ping(id="p1"), [layer], pixels=client)
    assert bytes(frames[3]) == b""  # the pixels did not go into the message
    _, received = codec.decode(frames, pixels=daemon)
    assert bytes(received[0].data) == bytes(layer.data)
    reply = codec.encode(Pong(id="p1"), received, pixels=daemon)
    _, echoed = codec.decode(reply, pixels=client)
    assert bytes(echoed[0].data) == bytes(layer.data)
    assert (echoed[0].width, echoed[0].height, echoed[0].layout) == (96, 64, layout)
    client.close()
    daemon.close()


def test_signed_messages_cover_the_shared_memory_reference() -> None:
    client, daemon = ClientPixels(min_bytes=1), DaemonPixels(min_bytes=1)
    frames = codec.encode(Ping(id="p1"), [_layer(8, 8)], key=b"k", pixels=client)
    assert len(codec.decode(frames, key=b"k", pixels=daemon)[1]) == 1
    tampered = list(frames)
    tampered[1] = bytes(frames[1]).replace(b'"size":256', b'"size":255')
    with pytest.raises(ProtocolError) as err:
        codec.decode(tampered, key=b"k", pixels=daemon)
    assert err.value.code is ErrorCode.AUTH_FAILED
    client.close()


def test_small_rasters_still_travel_as_frames() -> None:
    client = ClientPixels()  # default threshold: 64 KiB
    tiny = _layer(4, 4)
    frames = codec.encode(Ping(id="p"), [tiny], pixels=client)
    assert bytes(frames[3]) == bytes(tiny.data)


def test_a_receiver_without_a_carrier_refuses_shared_memory() -> None:
    client = ClientPixels(min_bytes=1)
    frames = codec.encode(Ping(id="p"), [_layer(8, 8)], pixels=client)
    with pytest.raises(ProtocolError) as err:
        codec.decode(frames)  # e.g. a daemon with shared_memory = false
    assert err.value.code is ErrorCode.BAD_FRAME
    assert "shared-memory" in err.value.message
    client.close()


def _ref_frames(ref: object, width: int = 8, height: int = 8) -> list:
    frames = codec.encode(Ping(id="p"), [_layer(width, height)])
    header = bytes(frames[1]).replace(b'"colorspace":"srgb"',
                                      b'"colorspace":"srgb","shm":' + _json(ref))
    return [frames[0], header, frames[2], b""]


def _json(value: object) -> bytes:
    import json

    return json.dumps(value).encode()


@pytest.mark.parametrize(
    "ref",
    [
        "/etc/passwd",
        {"pid": "self", "fd": 0, "token": "0" * 32, "size": 256},
        {"pid": 1, "fd": "../../../etc/passwd", "token": "0" * 32, "size": 256},
        {"pid": True, "fd": 3, "token": "0" * 32, "size": 256},
        {"pid": 1, "fd": 3, "token": "../../etc/passwd", "size": 256},
        {"pid": 1, "fd": 3, "token": "0" * 32 + "/x", "size": 256},
        {"pid": 1, "fd": -1, "token": "0" * 32, "size": 256},
    ],
)
def test_malformed_references_are_refused_before_touching_the_filesystem(ref: object) -> None:
    with pytest.raises(ProtocolError) as err:
        codec.decode(_ref_frames(ref), pixels=DaemonPixels())
    assert err.value.code is ErrorCode.BAD_FRAME


def test_a_size_that_does_not_match_the_declared_shape_is_refused() -> None:
    segment = Segment(256)
    try:
        ref = segment.fill(b"\x01" * 256)
        with pytest.raises(ProtocolError, match="shape needs"):
            codec.decode(_ref_frames(ref, 8, 9), pixels=DaemonPixels())  # 8x9 needs 288
        assert len(codec.decode(_ref_frames(ref, 8, 8), pixels=DaemonPixels())[1]) == 1
    finally:
        segment.close()


def test_an_fd_that_is_not_a_sfumato_memory_file_is_refused() -> None:
    # a real file the receiver could read: the reference must not become a way to read it
    with tempfile.TemporaryFile() as secret:
        secret.write(b"s" * 256)
        secret.flush()
        ref = {"pid": os.getpid(), "fd": secret.fileno(), "token": "a" * 32, "size": 256}
        with pytest.raises(SharedPixelsError, match="does not name"):
            open_reference(ref, 256)


def test_an_unsealed_memory_file_is_refused() -> None:
    # shrinkable under the reader: a truncate would crash it with SIGBUS
    token = "b" * 32
    fd = os.memfd_create(shared_pixels.memory_file_name(os.getpid(), token), os.MFD_CLOEXEC)
    try:
        os.write(fd, b"x" * 256)
        with pytest.raises(SharedPixelsError, match="sealed"):
            open_reference({"pid": os.getpid(), "fd": fd, "token": token, "size": 256}, 256)
    finally:
        os.close(fd)


def test_the_sender_cannot_resize_a_file_a_reader_maps() -> None:
    segment = Segment(1024)
    try:
        ref = segment.fill(b"\x07" * 1024)
        mapping = open_reference(ref, 1024)
        for size in (10, 4096):
            with pytest.raises(PermissionError):
                os.ftruncate(segment.fd, size)
        assert mapping[:] == b"\x07" * 1024
        mapping.close()
    finally:
        segment.close()


def test_daemon_reply_files_are_reused_only_once_the_client_let_go() -> None:
    client, daemon = ClientPixels(min_bytes=1), DaemonPixels(min_bytes=1)
    reply = codec.encode(Pong(id="p"), [_layer(16, 16), _layer(8, 8)], pixels=daemon)
    assert daemon.outstanding() == 2
    _, rasters = codec.decode(reply, pixels=client)
    codec.decode(codec.encode(Ping(id="q"), [], pixels=client), pixels=daemon)
    assert daemon.outstanding() == 2  # the artist's code still holds the pixels
    held = bytes(rasters[0].data)
    other = Raster(16, 16, Layout.RGBA8, bytes(16 * 16 * 4))
    codec.encode(Pong(id="r"), [other], pixels=daemon)  # must not overwrite them
    still = bytes(rasters[0].data)
    del rasters  # (before any assert: pytest's assert rewriting keeps what it inspects)
    assert still == held and len(daemon.pool.tokens()) == 3
    gc.collect()
    codec.decode(codec.encode(Ping(id="s"), [], pixels=client), pixels=daemon)
    assert daemon.outstanding() == 1  # the two let go; the third reply is still out
    codec.encode(Pong(id="t"), [_layer(8, 8)], pixels=daemon)
    assert len(daemon.pool.tokens()) == 3  # reused one of the two, no new memory file
    daemon.close()


def test_client_request_files_are_reused_after_a_reply_but_not_after_a_submit() -> None:
    client = ClientPixels(min_bytes=1)
    first = codec.encode(Ping(id="a"), [_layer(8, 8)], pixels=client)
    client.finish_sent(reused=True)
    again = codec.encode(Ping(id="b"), [_layer(8, 8)], pixels=client)
    assert _token(first) == _token(again)  # no new memory file per round trip
    client.finish_sent(reused=False)  # e.g. a submit: its job reads the pixels later
    later = codec.encode(Ping(id="c"), [_layer(8, 8)], pixels=client)
    assert _token(later) != _token(again)
    client.close()


def _token(frames: list) -> str:
    return json.loads(bytes(frames[1]))["rasters"][0]["shm"]["token"]


def test_daemon_reply_files_are_retired_when_the_client_never_says() -> None:
    daemon = DaemonPixels(min_bytes=1, keep_s=30.0)
    codec.encode(Pong(id="p"), [_layer(8, 8)], pixels=daemon)
    daemon.expire(now=1e12)
    assert daemon.outstanding() == 0 and not daemon.pool.tokens()


def test_only_clients_that_read_shared_memory_get_it() -> None:
    client, daemon = ClientPixels(min_bytes=1), DaemonPixels(min_bytes=1)
    codec.decode(codec.encode(Ping(id="a"), []), pixels=daemon)
    daemon.note_peer(b"remote")
    codec.decode(codec.encode(Ping(id="b"), [], pixels=client), pixels=daemon)
    daemon.note_peer(b"local")
    assert daemon.for_peer(b"remote") is None
    assert daemon.for_peer(b"local") is daemon


@pytest.mark.parametrize(
    ("endpoint", "local"),
    [
        ("tcp://127.0.0.1:5655", True),
        ("tcp://localhost:5655", True),
        ("tcp://[::1]:5655", True),
        ("ipc:///tmp/sfumato.sock", True),
        ("tcp://192.168.1.20:5655", False),
        ("tcp://studio-gpu:5655", False),
    ],
)
def test_only_same_machine_endpoints_try_shared_memory(endpoint: str, local: bool) -> None:
    assert is_local_endpoint(endpoint) is local


def test_a_view_derived_from_reply_pixels_keeps_them_from_being_overwritten() -> None:
    client, daemon = ClientPixels(min_bytes=1), DaemonPixels(min_bytes=1)
    layer = _layer(16, 16)
    _, rasters = codec.decode(codec.encode(Pong(id="p"), [layer], pixels=daemon), pixels=client)
    derived = memoryview(rasters[0].data)[::2]  # e.g. what numpy.frombuffer makes
    del rasters
    gc.collect()
    codec.decode(codec.encode(Ping(id="q"), [], pixels=client), pixels=daemon)
    assert daemon.outstanding() == 1  # still read through the derived view
    other = Raster(16, 16, Layout.RGBA8, bytes(16 * 16 * 4))  # different pixels, same size
    codec.encode(Pong(id="r"), [other], pixels=daemon)
    assert bytes(derived) == bytes(layer.data)[::2]
    del derived
    gc.collect()
    codec.decode(codec.encode(Ping(id="s"), [], pixels=client), pixels=daemon)
    assert daemon.outstanding() == 1  # the first let go; the second reply is still out
    client.close()
    daemon.close()


def test_unused_free_reply_files_are_closed_and_only_their_client_is_told() -> None:
    alice, bob, daemon = ClientPixels(min_bytes=1), ClientPixels(min_bytes=1), DaemonPixels(
        min_bytes=1)

    def hello(client: ClientPixels, identity: bytes) -> None:
        daemon.receiving_from(identity)
        codec.decode(codec.encode(Ping(id="h"), [], pixels=client), pixels=daemon)
        daemon.note_peer(identity)

    def reply(client: ClientPixels, identity: bytes, layer: Raster) -> tuple[dict, list]:
        frames = codec.encode(Pong(id="p"), [layer], pixels=daemon.for_peer(identity))
        return json.loads(bytes(frames[1])), codec.decode(frames, pixels=client)[1]

    hello(alice, b"alice")
    hello(bob, b"bob")
    header, rasters = reply(alice, b"alice", _layer(16, 16))
    token = header["rasters"][0]["shm"]["token"]
    assert token in alice.replies.mappings.tokens()  # kept mapped for the next reply
    del rasters
    gc.collect()
    hello(alice, b"alice")  # "every view of it is gone": free, but still open and mapped
    daemon.expire(now=time.monotonic() + shared_pixels.FREE_KEEP_S / 2)
    assert token in daemon.pool.tokens()  # kept a while: the next reply may reuse it
    daemon.expire(now=time.monotonic() + shared_pixels.FREE_KEEP_S + 1)
    assert token not in daemon.pool.tokens()  # closed: the memory goes once alice lets go
    header, _ = reply(bob, b"bob", _layer(8, 8))
    assert "shm_retired" not in header  # bob never read it
    assert token in alice.replies.mappings.tokens()
    header, _ = reply(alice, b"alice", _layer(8, 8))
    assert header["shm_retired"] == [token]
    assert token not in alice.replies.mappings.tokens()
    for carrier in (alice, bob, daemon):
        carrier.close()


def test_a_reply_file_is_freed_only_by_its_client_and_reused_only_for_it() -> None:
    daemon = DaemonPixels(min_bytes=1)

    def reply_token(identity: bytes) -> str:
        frames = codec.encode(Pong(id="p"), [_layer(16, 16)], pixels=daemon.for_peer(identity))
        return json.loads(bytes(frames[1]))["rasters"][0]["shm"]["token"]

    def release(identity: bytes, token: str) -> None:
        daemon.receiving_from(identity)
        header = {"type": "ping", "id": "r", "rasters": [], "shm": True, "shm_release": [token]}
        codec.decode([codec.PREFIX, json.dumps(header).encode(), b"{}"], pixels=daemon)
        daemon.note_peer(identity)

    for identity in (b"alice", b"bob", b"mallory"):
        release(identity, "0" * 32)  # each says it reads shared memory
    alices = reply_token(b"alice")
    release(b"mallory", alices)  # not hers to free
    assert daemon.backlog(b"alice") == 16 * 16 * 4
    release(b"alice", alices)
    assert daemon.backlog(b"alice") == 0
    assert reply_token(b"bob") != alices  # a free file of alice's is never bob's reply
    assert reply_token(b"alice") == alices  # ... but is alice's next one
    daemon.close()


def test_a_reference_to_anything_but_a_sealed_memory_file_is_refused_without_opening(
    tmp_path,  # noqa: ANN001 - pytest fixture
) -> None:
    from tests.support.hostile_peer import HOSTILE_BYTES, hostile_references

    with hostile_references(tmp_path) as references:
        for what, ref in references:
            with pytest.raises(SharedPixelsError):
                open_reference(ref, HOSTILE_BYTES)
            assert what
