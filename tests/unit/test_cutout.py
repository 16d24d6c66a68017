"""bridge.cutout (Select object's "layer" output): alpha = alpha * mask / 255 rounded, colour
kept, in every 4-channel layout, on each of its three routes (hard mask, opaque layer, soft mask
over a semi-transparent layer), checked against numpy."""

from __future__ import annotations

import numpy as np
import pytest
from sfumato.bridge.cutout import cut_out
from sfumato.bridge.raster import Layout, Raster

pytestmark = pytest.mark.unit

W, H = 13, 7
DTYPES = {Layout.RGBA8: np.uint8, Layout.BGRA8: np.uint8, Layout.RGBA16: np.dtype("<u2"),
          Layout.RGBAF32: np.dtype("<f4")}


def _pixels(layout: Layout, opaque: bool) -> np.ndarray:
    rng = np.random.default_rng(3)
    dtype = np.dtype(DTYPES[layout])
    if dtype.kind == "f":
        pixels = rng.random((H, W, 4)).astype(dtype)
        top = 1.0
    else:
        top = np.iinfo(dtype).max
        pixels = rng.integers(0, top + 1, (H, W, 4)).astype(dtype)
    if opaque:
        pixels[..., 3] = top
    return pixels


def _mask(hard: bool) -> np.ndarray:
    rng = np.random.default_rng(5)
    values = rng.integers(0, 2, (H, W)) * 255 if hard else rng.integers(0, 256, (H, W))
    return values.astype(np.uint8)


@pytest.mark.parametrize("layout", list(DTYPES))
@pytest.mark.parametrize("hard,opaque", [(True, False), (False, True), (False, False),
                                         (True, True)])
def test_alpha_is_the_layers_alpha_times_the_mask(layout: Layout, hard: bool,
                                                   opaque: bool) -> None:
    pixels, mask = _pixels(layout, opaque), _mask(hard)
    out = cut_out(Raster(W, H, layout, pixels.tobytes()),
                  Raster(W, H, Layout.GRAY8, mask.tobytes()))
    got = np.frombuffer(out.packed_bytes(), pixels.dtype).reshape(H, W, 4)
    assert out.layout is layout and (out.width, out.height) == (W, H)
    assert np.array_equal(got[..., :3], pixels[..., :3])  # colour kept
    if pixels.dtype.kind == "f":
        expected = pixels[..., 3] * (mask / np.float32(255.0))
        assert np.allclose(got[..., 3], expected, atol=1e-6)
        assert np.array_equal(got[..., 3] == 0, (mask == 0) | (pixels[..., 3] == 0))
    else:
        expected = np.floor(pixels[..., 3].astype(np.float64) * mask / 255.0 + 0.5)
        assert np.array_equal(got[..., 3], expected.astype(pixels.dtype))
    if opaque and pixels.dtype == np.uint8:
        assert np.array_equal(got[..., 3], mask)  # an opaque layer's alpha is the mask


def test_a_mask_of_another_size_is_refused() -> None:
    pixels = Raster(W, H, Layout.RGBA8, bytes(W * H * 4))
    with pytest.raises(ValueError, match="gray8 mask of their size"):
        cut_out(pixels, Raster(W - 1, H, Layout.GRAY8, bytes((W - 1) * H)))
