"""bridge/selection.py: the selection's bounding box and crops, in pure Python."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sfumato.bridge.raster import Layout, Raster
from sfumato.bridge.selection import Rect, crop, mask_bounds

pytestmark = pytest.mark.unit


def _brute_bounds(width: int, height: int, data: bytes) -> Rect | None:
    hits = [(i % width, i // width) for i, value in enumerate(data) if value]
    if not hits:
        return None
    xs, ys = [x for x, _ in hits], [y for _, y in hits]
    return Rect(min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1)


@st.composite
def masks(draw: st.DrawFn) -> tuple[int, int, bytes, int]:
    width = draw(st.integers(1, 24))
    height = draw(st.integers(1, 24))
    cells = draw(st.lists(st.sampled_from([0, 0, 0, 0, 1, 128, 255]),
                          min_size=width * height, max_size=width * height))
    padding = draw(st.integers(0, 3))
    return width, height, bytes(cells), padding


@given(masks())
def test_mask_bounds_matches_a_brute_force_scan(mask: tuple[int, int, bytes, int]) -> None:
    width, height, data, padding = mask
    # Row padding holds junk that must not count as selected.
    padded = b"".join(data[y * width : (y + 1) * width] + b"\x07" * padding
                      for y in range(height))
    raster = Raster(width, height, Layout.GRAY8, padded, stride=width + padding)
    assert mask_bounds(raster) == _brute_bounds(width, height, data)


def test_mask_bounds_is_fast_on_a_4k_mask() -> None:
    width, height = 3840, 2160
    data = bytearray(width * height)
    for y in range(900, 1300):
        data[y * width + 1000 : y * width + 2500] = b"\xff" * 1500
    data[2100 * width + 3] = 9  # one stray selected pixel far away
    raster = Raster(width, height, Layout.GRAY8, bytes(data))
    started = time.perf_counter()
    found = mask_bounds(raster)
    elapsed = time.perf_counter() - started
    assert found == Rect(3, 900, 2497, 1201)
    assert elapsed < 0.5, f"{elapsed:.3f} s for a 4K mask"
    assert mask_bounds(Raster(width, height, Layout.GRAY8, bytes(width * height))) is None


def test_mask_bounds_wants_gray8() -> None:
    with pytest.raises(ValueError, match="gray8"):
        mask_bounds(Raster(1, 1, Layout.RGBA8, b"\0\0\0\0"))


def test_crop_copies_the_rect_rows() -> None:
    width, height = 5, 4
    data = bytes(range(width * height * 4))
    raster = Raster(width, height, Layout.RGBA8, data)
    part = crop(raster, Rect(1, 2, 3, 2))
    assert (part.width, part.height, part.layout) == (3, 2, Layout.RGBA8)
    expected = b"".join(data[(y * width + 1) * 4 : (y * width + 4) * 4] for y in (2, 3))
    assert bytes(part.data) == expected
    with pytest.raises(ValueError, match="outside"):
        crop(raster, Rect(3, 0, 3, 1))


def test_rect_grow_and_clamp() -> None:
    layer = Rect(0, 0, 100, 80)
    assert Rect(10, 70, 5, 5).grown(20).clamped(layer) == Rect(0, 50, 35, 30)
    assert Rect(200, 0, 5, 5).clamped(layer).is_empty
    assert Rect(1, 2, 3, 4).moved(10, 20) == Rect(11, 22, 3, 4)
