"""The daemon-worker link's memory files: what travels, when a file is reused, when it is
let go. Both sides in one process, through the real codec."""

from __future__ import annotations

import gc
import json

import pytest
from sfumato.bridge import codec, shared_pixels
from sfumato.bridge.protocol import Result, Submit
from sfumato.bridge.raster import Layout, Raster
from sfumato.bridge.shared_pixels import HEADER_RETIRED
from sfumato.core.worker.pixel_link import LinkPixels

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(not shared_pixels.available(), reason="needs Linux memfd and /proc"),
]


def _layer(width: int, height: int, seed: int = 0) -> Raster:
    size = width * height * 4
    return Raster(width, height, Layout.RGBA8, bytes((i * 31 + seed) % 256 for i in range(size)))


def _result(sender: LinkPixels, receiver: LinkPixels, layer: Raster) -> tuple[str, Raster]:
    frames = codec.encode(Result(id="j", job_id="j"), [layer], pixels=sender)
    assert bytes(frames[3]) == b""  # the pixels did not go through the pipe
    token = json.loads(bytes(frames[1]))["rasters"][0]["shm"]["token"]
    return token, codec.decode(frames, pixels=receiver)[1][0]


def _submit(sender: LinkPixels, receiver: LinkPixels) -> None:
    """A message with no pixels, carrying the sender's news (releases) to the receiver."""
    codec.decode(codec.encode(Submit(id="s", task="upscale"), [], pixels=sender),
                 pixels=receiver)


def test_pixels_arrive_bit_identical_and_read_only() -> None:
    worker, daemon = LinkPixels(min_bytes=1), LinkPixels(min_bytes=1)
    layer = _layer(40, 30)
    _, received = _result(worker, daemon, layer)
    assert bytes(received.data) == bytes(layer.data)
    assert memoryview(received.data).readonly
    worker.close()
    daemon.close()


def test_a_file_is_reused_only_once_every_view_of_it_is_gone() -> None:
    worker, daemon = LinkPixels(min_bytes=1), LinkPixels(min_bytes=1)
    first, kept = _result(worker, daemon, _layer(40, 30, seed=1))
    _submit(daemon, worker)  # nothing let go yet
    second, held = _result(worker, daemon, _layer(40, 30, seed=2))
    assert second != first  # the first is still read: a new file, nothing overwritten
    assert bytes(kept.data) == bytes(_layer(40, 30, seed=1).data)

    _submit(daemon, worker)  # a message in between: the releases list is handed over fresh
    del kept
    gc.collect()
    _submit(daemon, worker)
    third, _ = _result(worker, daemon, _layer(40, 30, seed=3))
    assert third == first  # let go: reused, no fresh pages
    assert held is not None and second != third
    worker.close()
    daemon.close()


def test_a_file_never_let_go_is_retired_and_the_reader_forgets_it() -> None:
    worker, daemon = LinkPixels(min_bytes=1, keep_s=0.0), LinkPixels(min_bytes=1)
    token, kept = _result(worker, daemon, _layer(40, 30))
    assert token in daemon.peer_files.mappings.tokens()
    frames = codec.encode(Result(id="j", job_id="j"), [_layer(40, 30)], pixels=worker)
    assert token not in worker.pool.tokens()  # `keep_s` is up: the first file is closed
    assert token in json.loads(bytes(frames[1]))[HEADER_RETIRED]  # the reader is told
    codec.decode(frames, pixels=daemon)
    assert token not in daemon.peer_files.mappings.tokens()
    assert bytes(kept.data) == bytes(_layer(40, 30).data)  # a view still reads its pixels
    worker.close()
    daemon.close()


def test_a_restarted_peer_frees_every_file_it_held() -> None:
    daemon, worker = LinkPixels(min_bytes=1), LinkPixels(min_bytes=1)
    token, _held_by_the_dead_worker = _result(daemon, worker, _layer(40, 30))
    daemon.peer_restarted()
    assert _result(daemon, LinkPixels(min_bytes=1), _layer(40, 30))[0] == token
    daemon.close()
    worker.close()


def test_small_rasters_stay_in_the_message() -> None:
    worker, daemon = LinkPixels(), LinkPixels()  # default threshold: 64 KiB
    small = _layer(16, 16)
    frames = codec.encode(Result(id="j", job_id="j"), [small], pixels=worker)
    assert bytes(frames[3]) == bytes(small.data)
    assert bytes(codec.decode(frames, pixels=daemon)[1][0].data) == bytes(small.data)
