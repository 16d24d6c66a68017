"""core.imaging: masks, crop planning, resizing, colour matching and the result layer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sfumato.bridge.geometry import Rect
from sfumato.core.pixels.compose import (
    compose_result_layer,
    composite_over,
    match_colours,
    resize_rgb,
    rgb_over_grey,
)
from sfumato.core.pixels.geometry import native_size, plan_crop
from sfumato.core.pixels.masks import (
    box_blur,
    mask_reach,
    max_filter,
    resize_mask,
    selection_bbox,
    selection_crop,
    soft_mask,
)

pytestmark = pytest.mark.unit

FAST = settings(max_examples=60, deadline=None)


def masks(max_side: int = 24) -> st.SearchStrategy[np.ndarray]:
    """Sparse selections: mostly 0, some 255, some grey."""
    shape = st.tuples(st.integers(1, max_side), st.integers(1, max_side))
    values = st.sampled_from([0, 0, 0, 0, 0, 0, 255, 255, 128, 7])
    return shape.flatmap(lambda s: arrays(np.uint8, s, elements=values))


def _naive_max(array: np.ndarray, radius: int) -> np.ndarray:
    padded = np.pad(array, radius, mode="edge")
    height, width = array.shape
    out = np.empty_like(array)
    for y in range(height):
        for x in range(width):
            out[y, x] = padded[y : y + 2 * radius + 1, x : x + 2 * radius + 1].max()
    return out


def _near_selection(mask: np.ndarray, reach: int) -> np.ndarray:
    """Pixels within Chebyshev distance `reach` of a selected pixel (no edge extension)."""
    selected = mask > 0
    near = np.zeros_like(selected)
    for y, x in zip(*np.nonzero(selected), strict=True):
        near[max(0, y - reach) : y + reach + 1, max(0, x - reach) : x + reach + 1] = True
    return near


# --- filters --------------------------------------------------------------------------------


@FAST
@given(masks(), st.integers(0, 5))
def test_max_filter_matches_a_naive_window_max(mask: np.ndarray, radius: int) -> None:
    assert np.array_equal(max_filter(mask, radius), _naive_max(mask, radius))


@FAST
@given(arrays(np.float32, st.tuples(st.integers(1, 20), st.integers(1, 20)),
              elements=st.floats(0, 1, width=32)), st.integers(0, 4))
def test_box_blur_is_the_edge_extended_window_mean(image: np.ndarray, radius: int) -> None:
    padded = np.pad(image.astype(np.float64), radius, mode="edge")
    size = 2 * radius + 1
    expected = np.array([
        [padded[y : y + size, x : x + size].mean() for x in range(image.shape[1])]
        for y in range(image.shape[0])
    ])
    assert np.allclose(box_blur(image, radius), expected, atol=1e-5)


def test_box_blur_keeps_exact_zeros_far_from_anything() -> None:
    image = np.zeros((50, 400), np.float32)
    image[:, 380:] = 0.7
    blurred = box_blur(image, 5)
    assert np.all(blurred[:, :374] == 0.0)


# --- soft mask --------------------------------------------------------------------------------


@FAST
@given(masks(), st.integers(0, 4), st.integers(0, 9))
def test_soft_mask_properties(mask: np.ndarray, grow: int, feather: int) -> None:
    soft = soft_mask(mask, grow, feather)
    assert soft.dtype == np.float32 and soft.shape == mask.shape
    assert soft.min() >= 0.0 and soft.max() <= 1.0
    assert np.all(soft[mask == 255] == 1.0)  # fully selected stays exactly selected
    assert np.all(soft >= mask.astype(np.float32) / 255.0)  # partial selection never lowered


@FAST
@given(masks(), st.integers(0, 3), st.integers(0, 7))
def test_soft_mask_is_exactly_zero_beyond_its_reach(mask: np.ndarray, grow: int,
                                                     feather: int) -> None:
    soft = soft_mask(mask, grow, feather)
    far = ~_near_selection(mask, mask_reach(grow, feather))
    # edge extension may carry a selection that touches the border along it; stay off it
    inner = np.zeros_like(far)
    reach = mask_reach(grow, feather)
    if not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()):
        inner[:] = True
    else:
        inner[reach + 1 : -reach - 1, reach + 1 : -reach - 1] = True
    assert np.all(soft[far & inner] == 0.0)


def test_soft_mask_without_grow_or_feather_is_the_mask() -> None:
    mask = np.array([[0, 128, 255], [7, 0, 0]], np.uint8)
    assert np.array_equal(soft_mask(mask, 0, 0), mask.astype(np.float32) / 255.0)


def test_feather_ramps_smoothly_outward_and_grow_dilates() -> None:
    mask = np.zeros((60, 60), np.uint8)
    mask[25:35, 25:35] = 255
    row = soft_mask(mask, 3, 10)[30]
    assert np.all(row[22:38] == 1.0)  # grown by 3, still fully selected
    ramp = row[10:22]
    assert np.all(np.diff(ramp) >= 0) and 0.0 < ramp[-1] < 1.0 and ramp[0] == 0.0
    assert np.allclose(row, row[::-1], atol=1e-6)  # symmetric


def test_soft_mask_of_nothing_is_zero_and_bad_input_is_refused() -> None:
    assert not soft_mask(np.zeros((5, 5), np.uint8), 3, 3).any()
    with pytest.raises(ValueError):
        soft_mask(np.zeros((5, 5), np.float32), 1, 1)
    with pytest.raises(ValueError):
        soft_mask(np.zeros((5, 5), np.uint8), -1, 0)


# --- boxes and crops --------------------------------------------------------------------------


@FAST
@given(masks())
def test_selection_bbox_is_the_tightest_box(mask: np.ndarray) -> None:
    box = selection_bbox(mask)
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        assert box is None
        return
    assert box == Rect.from_edges(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


@FAST
@given(
    st.integers(1, 300), st.integers(1, 300), st.data(), st.integers(0, 40),
    st.sampled_from([1, 8, 16]),
)
def test_plan_crop_covers_context_stays_inside_and_rounds_when_it_can(
    width: int, height: int, data: st.DataObject, context: int, multiple: int
) -> None:
    x0 = data.draw(st.integers(0, width - 1))
    y0 = data.draw(st.integers(0, height - 1))
    x1 = data.draw(st.integers(x0 + 1, width))
    bbox = Rect.from_edges(x0, y0, x1, data.draw(st.integers(y0 + 1, height)))
    crop = plan_crop(bbox, width, height, context, multiple)
    wanted = bbox.grown(context).within(width, height)
    assert 0 <= crop.x <= wanted.x and wanted.right <= crop.right <= width
    assert 0 <= crop.y <= wanted.y and wanted.bottom <= crop.bottom <= height
    if -(-wanted.width // multiple) * multiple <= width:
        assert crop.width % multiple == 0
    if -(-wanted.height // multiple) * multiple <= height:
        assert crop.height % multiple == 0


@FAST
@given(masks(40), st.integers(0, 3), st.integers(0, 6), st.integers(0, 5), st.sampled_from([1, 8]))
def test_selection_crop_gives_the_whole_layers_soft_mask(
    mask: np.ndarray, grow: int, feather: int, context: int, multiple: int
) -> None:
    selected = selection_bbox(mask)
    if selected is None:
        return
    crop, soft = selection_crop(mask, selected, grow, feather, context, multiple)
    whole = soft_mask(mask, grow, feather)
    assert np.array_equal(soft, whole[crop.slices])
    outside = whole.copy()
    outside[crop.slices] = 0.0
    assert not outside.any()  # nothing of the soft mask falls outside the crop


@FAST
@given(st.integers(1, 5000), st.integers(1, 5000), st.sampled_from([8, 16]),
       st.sampled_from([256 * 256, 512 * 512, 1024 * 1024]))
def test_native_size_keeps_aspect_and_area_on_the_multiple(
    width: int, height: int, multiple: int, target: int
) -> None:
    w, h = native_size(width, height, target, multiple)
    assert w % multiple == 0 and h % multiple == 0 and w >= multiple and h >= multiple
    if min(w, h) >= 8 * multiple:  # rounding dominates only for extreme aspect ratios
        assert abs(w / h - width / height) / (width / height) < 0.15
        assert 0.8 < (w * h) / target < 1.25


# --- pixels -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_resize_rgb_keeps_dtype_and_same_size_is_a_copy(dtype: type) -> None:
    rng = np.random.default_rng(1)
    image = (rng.random((30, 40, 3)) * (1 if dtype == np.float32 else np.iinfo(dtype).max))
    image = image.astype(dtype)
    same = resize_rgb(image, (40, 30))
    assert np.array_equal(same, image) and same is not image
    bigger = resize_rgb(image, (80, 61))
    assert bigger.shape == (61, 80, 3) and bigger.dtype == image.dtype
    if dtype == np.float32:
        assert bigger.min() >= 0.0 and bigger.max() <= 1.0


def test_resize_mask_keeps_zero_regions_zero() -> None:
    weights = np.zeros((20, 20), np.float32)
    weights[5:10, 5:10] = 1.0
    resized = resize_mask(weights, (40, 40))
    assert resized.shape == (40, 40) and resized[30:, 30:].max() == 0.0
    assert resized[15, 15] == 1.0


def test_match_colours_undoes_a_wash_out_measured_on_known_pixels() -> None:
    rng = np.random.default_rng(2)
    original = rng.integers(0, 256, (32, 32, 4), dtype=np.uint8)
    truth = original[..., :3] / 255.0
    washed = (truth * 0.6 + 0.3).astype(np.float32)
    known = np.ones((32, 32), np.float32)
    known[8:24, 8:24] = 0.0
    matched = match_colours(washed, original, known)
    assert np.abs(matched - truth).max() < 1e-3
    assert match_colours(washed, original, np.zeros((32, 32))) is washed


def test_rgb_over_grey_hides_colour_under_transparency() -> None:
    rgba = np.array([[[255, 0, 0, 0], [255, 0, 0, 255]]], np.uint8)
    rgb = rgb_over_grey(rgba)
    assert np.allclose(rgb[0, 0], 0.5) and np.allclose(rgb[0, 1], [1, 0, 0])


@FAST
@given(st.sampled_from([np.uint8, np.uint16]), masks(20), st.integers(0, 3), st.integers(0, 4),
       st.booleans(), st.integers(0, 2**31))
def test_result_layer_over_the_source_leaves_unselected_pixels_bit_identical(
    dtype: type, mask: np.ndarray, grow: int, feather: int, keep_alpha: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    height, width = mask.shape
    source = rng.integers(0, top + 1, (height + 6, width + 5, 4), dtype=dtype)
    crop = source[3 : 3 + height, 2 : 2 + width]
    soft = soft_mask(mask, grow, feather)
    generated = rng.random((height, width, 3)).astype(np.float32)
    layer = compose_result_layer(generated, crop, soft, keep_alpha=keep_alpha)
    assert layer.dtype == dtype and layer.shape == crop.shape
    assert np.all(layer[..., 3][soft == 0] == 0)
    result = composite_over(source, layer, (2, 3))
    untouched = np.ones(source.shape[:2], bool)
    untouched[3 : 3 + height, 2 : 2 + width] = soft == 0
    assert np.array_equal(result[untouched], source[untouched])
    full = soft == 1.0
    if not keep_alpha:  # fully selected pixels are the generated colour, opaque
        expected = np.rint(generated[full] * top).astype(dtype)
        assert np.array_equal(result[3 : 3 + height, 2 : 2 + width][full][:, :3], expected)
        assert np.all(result[3 : 3 + height, 2 : 2 + width][full][:, 3] == top)


def test_keep_alpha_multiplies_the_layers_own_alpha() -> None:
    crop = np.zeros((1, 2, 4), np.uint8)
    crop[..., 3] = [255, 102]
    soft = np.array([[0.5, 1.0]], np.float32)
    layer = compose_result_layer(np.ones((1, 2, 3), np.float32), crop, soft, keep_alpha=True)
    assert list(layer[0, :, 3]) == [128, 102]
    layer = compose_result_layer(np.ones((1, 2, 3), np.float32), crop, soft, keep_alpha=False)
    assert list(layer[0, :, 3]) == [128, 255]


def test_composite_over_clips_to_the_source_and_blends_normally() -> None:
    source = np.zeros((4, 4, 4), np.uint8)
    source[..., 3] = 255
    layer = np.zeros((3, 3, 4), np.uint8)
    layer[..., 0] = 200
    layer[..., 3] = 255
    layer[0, 0, 3] = 0
    layer[1, 1, 3] = 51  # 20 % over black: 40
    out = composite_over(source, layer, (2, 2))
    assert out[2, 2, 0] == 0 and out[3, 3, 0] == 40 and out[2, 3, 0] == 200
    assert np.array_equal(out[:2], source[:2])
    assert np.array_equal(composite_over(source, layer, (10, 10)), source)
    with pytest.raises(ValueError):
        composite_over(source, layer.astype(np.uint16), (0, 0))
