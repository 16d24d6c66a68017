"""The preprocessors that need no weights, on drawn pictures whose right answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from sfumato.bridge.protocol import ErrorCode
from sfumato.core.errors import SfumatoError
from sfumato.core.preprocessors.catalogue import CONTROL_KINDS, preprocess

pytestmark = pytest.mark.unit


def _square(size: int = 96) -> np.ndarray:
    """A black square on white, from (24, 24) to (72, 72) exclusive."""
    image = np.full((size, size, 3), 255, np.uint8)
    image[24:72, 24:72] = 0
    return image


def _border(width: int) -> np.ndarray:
    """Pixels within `width` of the square's outline."""
    near = np.zeros((96, 96), bool)
    near[24 - width:72 + width, 24 - width:72 + width] = True
    near[24 + width:72 - width, 24 + width:72 - width] = False
    return near


def test_canny_edges_lie_on_the_square_border_and_go_all_round() -> None:
    edges = preprocess("canny", _square())
    assert edges.shape == (96, 96, 3) and edges.dtype == np.uint8
    assert set(np.unique(edges)) == {0, 255}
    on = edges[..., 0] > 0
    assert on.any() and not on[~_border(2)].any()  # nothing inside, outside, or in corners
    for row in (30, 48, 66):  # the left and right sides are found on every row
        assert on[row, 20:28].any() and on[row, 68:76].any()


@pytest.mark.parametrize("kind", ["lineart", "scribble", "softedge"])
def test_line_kinds_are_light_on_the_outline_and_dark_elsewhere(kind: str) -> None:
    lines = preprocess(kind, _square())[..., 0].astype(int)
    near = _border(6)
    assert lines[near].max() >= 128  # the outline shows
    assert lines[~_border(12)].max() <= 32  # flat areas, inside and out, stay black
    assert (preprocess(kind, np.full((40, 40, 3), 90, np.uint8)) <= 8).all()  # flat: nothing


def test_scribble_strokes_are_bolder_than_canny_edges() -> None:
    assert (preprocess("scribble", _square()) > 0).sum() > 2 * (
        preprocess("canny", _square()) > 0).sum()


def test_tile_is_a_softened_copy() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    tiled = preprocess("tile", image).astype(int)
    assert tiled.shape == image.shape
    assert abs(tiled.mean() - image.mean()) < 8  # the same picture on average...
    assert np.abs(np.diff(tiled, axis=1)).mean() < np.abs(np.diff(image.astype(int), axis=1)
                                                          ).mean() / 2  # ...without its grain


def test_unknown_kinds_and_missing_models_are_typed_errors_naming_the_fix() -> None:
    with pytest.raises(SfumatoError) as caught:
        preprocess("mlsd", _square())
    assert caught.value.code is ErrorCode.BAD_PARAMS
    assert all(kind in caught.value.message for kind in CONTROL_KINDS)
    with pytest.raises(SfumatoError) as caught:
        preprocess("depth", _square())
    assert caught.value.code is ErrorCode.UNKNOWN_MODEL
    assert "sfumato models add" in caught.value.message
    with pytest.raises(SfumatoError) as caught:
        preprocess("pose", _square())
    assert caught.value.code is ErrorCode.UNKNOWN_MODEL
    for words in ("vitpose", "safetensors", "sfumato models add pose", "pose image"):
        assert words in caught.value.message  # what to install, or what to send instead
