"""krita_host.py and pixel_formats.py without Krita: Krita's storage layouts (as the real
Krita 5.1 reports them; tests/host/test_krita_plugin.py checks them in Krita itself) against a
fake node, with numpy as the independent oracle."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sfumato.bridge.actions import ActionError
from sfumato.bridge.raster import Layout, Raster
from sfumato.bridge.selection import Rect

pytestmark = pytest.mark.unit

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "krita"))
from sfumato_krita import pixel_formats  # noqa: E402
from sfumato_krita.krita_host import KritaHost, refusal  # noqa: E402

W, H = 6, 4
SRGB_TRC, LINEAR = "sRGB-elle-V2-srgbtrc.icc", "sRGB-elle-V2-g10.icc"
DTYPES = {"U8": np.uint8, "U16": np.dtype("<u2"), "F16": np.dtype("<f2"), "F32": np.dtype("<f4")}


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * np.maximum(v, 0) ** (1 / 2.4) - 0.055)


def rgba_unit() -> np.ndarray:
    """An RGBA image of values in [0, 1], sRGB-encoded colour, distinct R and B."""
    rng = np.random.default_rng(3)
    return rng.random((H, W, 4))


class FakeNode:
    """Stores pixels the way Krita 5.1 does: B,G,R,A for integers, R,G,B,A for floats."""

    def __init__(self, depth: str, profile: str, rgba: np.ndarray, model: str = "RGBA",
                 name: str = "source") -> None:
        self.depth, self.profile, self.model, self._name = depth, profile, model, name
        self.set_calls: list[tuple[bytes, int, int, int, int]] = []
        self.storage = self._store(rgba)

    def _store(self, rgba: np.ndarray) -> np.ndarray:
        linear = "g10" in self.profile
        colour = rgba.copy()
        if self.depth in ("F16", "F32"):
            if linear:
                colour[..., :3] = srgb_to_linear(colour[..., :3])
            return colour.astype(DTYPES[self.depth])
        if linear:
            colour[..., :3] = srgb_to_linear(colour[..., :3])
        top = 255 if self.depth == "U8" else 65535
        return np.round(colour[..., [2, 1, 0, 3]] * top).astype(DTYPES[self.depth])

    def colorModel(self) -> str:  # noqa: N802 - Krita's names
        return self.model

    def colorDepth(self) -> str:  # noqa: N802
        return self.depth

    def colorProfile(self) -> str:  # noqa: N802
        return self.profile

    def type(self) -> str:
        return "paintlayer"

    def name(self) -> str:
        return self._name

    def pixelData(self, x: int, y: int, w: int, h: int) -> bytes:  # noqa: N802
        return self.storage[y : y + h, x : x + w].tobytes()

    def setPixelData(self, data: bytes, x: int, y: int, w: int, h: int) -> None:  # noqa: N802
        self.set_calls.append((bytes(data), x, y, w, h))

    def setName(self, name: str) -> None:  # noqa: N802
        self._name = name

    def parentNode(self) -> Any:  # noqa: N802
        return None


class FakeSelection:
    def __init__(self, rect: tuple[int, int, int, int]) -> None:
        self.rect = rect

    def x(self) -> int:
        return self.rect[0]

    def y(self) -> int:
        return self.rect[1]

    def width(self) -> int:
        return self.rect[2]

    def height(self) -> int:
        return self.rect[3]

    def pixelData(self, x: int, y: int, w: int, h: int) -> bytes:  # noqa: N802
        sx, sy, sw, sh = self.rect
        return bytes(255 if sx <= i < sx + sw and sy <= j < sy + sh else 0
                     for j in range(y, y + h) for i in range(x, x + w))


class FakeRoot:
    def __init__(self) -> None:
        self.added: list[tuple[Any, Any]] = []

    def addChildNode(self, child: Any, above: Any) -> bool:  # noqa: N802
        self.added.append((child, above))
        return True


class FakeDocument:
    def __init__(self, node: FakeNode, selection: FakeSelection | None = None) -> None:
        self.node = node
        self.sel = selection
        self.root = FakeRoot()
        self.refreshed = 0

    def width(self) -> int:
        return W

    def height(self) -> int:
        return H

    def selection(self) -> FakeSelection | None:
        return self.sel

    def rootNode(self) -> FakeRoot:  # noqa: N802
        return self.root

    def createNode(self, name: str, kind: str) -> FakeNode:  # noqa: N802
        return FakeNode(self.node.depth, self.node.profile, np.zeros((H, W, 4)), name=name)

    def refreshProjection(self) -> None:  # noqa: N802
        self.refreshed += 1

    def waitForDone(self) -> None:  # noqa: N802
        pass


def host_for(depth: str, profile: str, rgba: np.ndarray | None = None,
             selection: FakeSelection | None = None) -> KritaHost:
    node = FakeNode(depth, profile, rgba_unit() if rgba is None else rgba)
    return KritaHost(FakeDocument(node, selection), node)


def as_array(raster: Raster) -> np.ndarray:
    dtype = {1: np.uint8, 2: np.dtype("<u2"), 4: np.dtype("<f4")}[raster.layout.bytes_per_channel]
    return np.frombuffer(raster.packed_bytes(), dtype).reshape(raster.height, raster.width, 4)


WHOLE = Rect(0, 0, W, H)


def test_8_bit_goes_out_in_kritas_own_order_without_a_copy() -> None:
    host = host_for("U8", SRGB_TRC)
    raster = host.read_pixels(WHOLE, [Layout.RGBA8, Layout.BGRA8, Layout.RGBA16])
    assert raster.layout is Layout.BGRA8
    assert raster.data == host.node.pixelData(0, 0, W, H)


def test_8_bit_swaps_to_rgba_when_only_that_is_accepted() -> None:
    rgba = rgba_unit()
    raster = host_for("U8", SRGB_TRC, rgba).read_pixels(Rect(1, 1, 3, 2), [Layout.RGBA8])
    expected = np.round(rgba[1:3, 1:4] * 255).astype(np.uint8)
    assert np.array_equal(as_array(raster), expected)


def test_16_bit_srgb_is_swapped_to_rgba16() -> None:
    rgba = rgba_unit()
    raster = host_for("U16", SRGB_TRC, rgba).read_pixels(WHOLE, [Layout.RGBA8, Layout.RGBA16])
    assert raster.layout is Layout.RGBA16
    assert np.array_equal(as_array(raster), np.round(rgba * 65535).astype("<u2"))


def test_16_bit_linear_is_encoded_to_srgb_on_the_way_out() -> None:
    rgba = rgba_unit()
    raster = host_for("U16", LINEAR, rgba).read_pixels(WHOLE, [Layout.RGBA16])
    got = as_array(raster).astype(int)
    assert np.abs(got - np.round(rgba * 65535)).max() <= 8  # linear 16-bit is coarse in darks
    assert np.array_equal(got[..., 3], np.round(rgba[..., 3] * 65535))  # alpha is not curved


@pytest.mark.parametrize("depth", ["F16", "F32"])
def test_float_goes_out_linear_and_as_16_bit_srgb(depth: str) -> None:
    rgba = rgba_unit()
    host = host_for(depth, LINEAR, rgba)
    floats = as_array(host.read_pixels(WHOLE, [Layout.RGBA16, Layout.RGBAF32]))
    expected = rgba.copy()
    expected[..., :3] = srgb_to_linear(rgba[..., :3])
    tolerance = 1e-3 if depth == "F16" else 1e-6
    assert np.abs(floats - expected).max() <= tolerance
    as16 = as_array(host.read_pixels(WHOLE, [Layout.RGBA8, Layout.RGBA16])).astype(int)
    assert np.abs(as16 - np.round(rgba * 65535)).max() <= (40 if depth == "F16" else 2)


def test_srgb_encoded_float_goes_out_linear() -> None:
    rgba = rgba_unit()
    floats = as_array(host_for("F32", SRGB_TRC, rgba).read_pixels(WHOLE, [Layout.RGBAF32]))
    assert np.abs(floats[..., :3] - srgb_to_linear(rgba[..., :3])).max() <= 1e-5


@pytest.mark.parametrize(("depth", "profile", "layout"), [
    ("U8", SRGB_TRC, Layout.BGRA8), ("U8", SRGB_TRC, Layout.RGBA8), ("U8", LINEAR, Layout.RGBA8),
    ("U16", SRGB_TRC, Layout.RGBA16), ("U16", LINEAR, Layout.RGBA16),
    ("F16", LINEAR, Layout.RGBAF32), ("F32", LINEAR, Layout.RGBAF32),
    ("F32", LINEAR, Layout.RGBA16), ("F32", SRGB_TRC, Layout.RGBAF32)])
def test_a_result_is_stored_back_in_the_layers_own_format(depth: str, profile: str,
                                                         layout: Layout) -> None:
    host = host_for(depth, profile)
    raster = host.read_pixels(WHOLE, [layout])
    host.add_layer(raster, 3, 2, "result")
    ((child, above),) = host.document.root.added
    assert above is host.node  # directly above the source
    assert child.name() == "result"
    ((data, x, y, w, h),) = child.set_calls
    assert (x, y, w, h) == (3, 2, W, H)
    stored = np.frombuffer(data, DTYPES[depth]).astype(float)
    original = host.node.storage.reshape(-1).astype(float)
    top = {"U8": 1.0, "U16": 1.0, "F16": 1e-3, "F32": 1e-5}[depth]
    if depth == "U8" and profile == LINEAR:
        top = 2.0  # 8-bit linear through 8-bit sRGB: the darks are coarse
    if layout is Layout.RGBA16 and depth == "F32":
        top = 2e-4
    assert np.abs(stored - original).max() <= top


def test_selection_bounds_come_from_krita_and_are_clipped_to_the_canvas() -> None:
    host = host_for("U8", SRGB_TRC, selection=FakeSelection((4, -1, 5, 3)))
    assert host.selection_bounds() == Rect(4, 0, 2, 2)
    mask = host.read_selection(Rect(3, 0, 3, 2))
    assert mask is not None and mask.layout is Layout.GRAY8
    assert bytes(mask.data) == bytes([0, 255, 255, 0, 255, 255])
    assert host_for("U8", SRGB_TRC).selection_bounds() is None


@pytest.mark.parametrize(("model", "depth"), [("CMYKA", "U8"), ("LABA", "U16"),
                                              ("GRAYA", "U8"), ("RGBA", "U32")])
def test_unsupported_pixels_are_refused_with_what_to_do(model: str, depth: str) -> None:
    node = FakeNode("U8", SRGB_TRC, rgba_unit())
    node.model, node.depth = model, depth
    host = KritaHost(FakeDocument(node), node)
    with pytest.raises(ActionError) as refused:
        host.layer_bounds()
    assert "The image is unchanged" in str(refused.value)
    message = refusal(host.document, node)
    assert message == str(refused.value)
    if model != "RGBA":
        assert model in message and "Convert Image Color Space" in message


def test_nothing_open_is_refused() -> None:
    assert refusal(None, None) == "Open an image and pick a paint layer first."


def test_storage_format_reads_the_profiles_curve() -> None:
    assert not pixel_formats.storage_format("RGBA", "U8", SRGB_TRC).linear
    assert pixel_formats.storage_format("RGBA", "U16", LINEAR).linear
    assert pixel_formats.storage_format("RGBA", "F32", "scRGB (linear)").linear
