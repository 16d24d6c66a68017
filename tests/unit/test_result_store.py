"""Kept results: bounded by bytes and by age, and each knows whether its owner got it."""

from __future__ import annotations

import pytest
from sfumato.bridge.protocol import Result as ResultMessage
from sfumato.bridge.raster import Layout, Raster
from sfumato.core.daemon.result_store import ResultStore

pytestmark = pytest.mark.unit


def _image(width: int, height: int) -> Raster:
    return Raster(width, height, Layout.RGBA8, bytes(width * height * 4))


def test_results_are_kept_bounded_and_for_a_set_time() -> None:
    now = [0.0]
    store = ResultStore(max_bytes=100, keep_s=60.0, clock=lambda: now[0])
    store.put("a", ResultMessage(id="1", job_id="a"), [_image(4, 4)], owner=b"x")  # 64 bytes
    now[0] = 30.0
    store.put("b", ResultMessage(id="2", job_id="b"), [_image(2, 2)], owner=b"x")  # 16 bytes
    assert store.missed_by(b"x") == ["a", "b"] and store.missed_by(b"y") == []
    store.mark_delivered("a")
    assert store.missed_by(b"x") == ["b"]
    store.put("c", ResultMessage(id="3", job_id="c"), [_image(4, 4)], owner=b"y")
    assert store.get("a") is None and store.get("b") is not None  # over 100 bytes: oldest out
    now[0] = 91.0  # b and c were kept at 30 s: 61 s old, past the 60 s keep
    assert store.get("b") is None and store.get("c") is None and len(store) == 0
    assert store.nbytes == 0
