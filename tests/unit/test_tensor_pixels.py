"""Pixels converted on the model's device come out exactly as raster_arrays converts them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sfumato.core.pixels.arrays import from_unit_float, to_unit_float
from sfumato.core.pixels.tensors import pack_unit, reflect_pad, to_unit_tensor

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_unit_floats_match_the_numpy_conversion_bit_for_bit(dtype: type) -> None:
    rng = np.random.default_rng(1)
    if dtype is np.float32:
        pixels = rng.uniform(-0.5, 1.5, (13, 17, 4)).astype(np.float32)
    else:
        pixels = rng.integers(0, np.iinfo(dtype).max, (13, 17, 4), endpoint=True).astype(dtype)
    tensor = to_unit_tensor(pixels[2:11, 3:15], torch.device("cpu"))  # a crop, as tasks take
    assert tensor.shape == (4, 9, 12) and tensor.dtype == torch.float32
    expected = to_unit_float(pixels[2:11, 3:15])
    np.testing.assert_array_equal(tensor.permute(1, 2, 0).numpy(), expected)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_packing_matches_the_numpy_conversion_bit_for_bit(dtype: type) -> None:
    rng = np.random.default_rng(2)
    unit = rng.uniform(-0.2, 1.2, (11, 7, 4)).astype(np.float32)
    top = {np.uint8: 255, np.uint16: 65535, np.float32: 1}[dtype]
    unit[0, :, 0] = (np.arange(7) + 0.5) / top  # exact ties: both round half to even
    expected = from_unit_float(unit, np.dtype(dtype))
    parts = [torch.from_numpy(unit[:, :, :3].transpose(2, 0, 1).copy()),
             torch.from_numpy(unit[:, :, 3:].transpose(2, 0, 1).copy())]
    packed = pack_unit(parts, np.dtype(dtype))
    assert packed.dtype == np.dtype(dtype) and packed.shape == (11, 7, 4)
    np.testing.assert_array_equal(packed, expected)


@pytest.mark.parametrize(
    ("height", "width", "pads"),
    [(20, 30, (10, 10, 10, 10)), (5, 40, (10, 0, 3, 10)), (1, 1, (2, 2, 2, 2))],
)
def test_reflect_pad_is_numpys_reflect(height: int, width: int,
                                       pads: tuple[int, int, int, int]) -> None:
    image = torch.rand(3, height, width)
    top, bottom, left, right = pads
    expected = np.pad(image.numpy(), ((0, 0), (top, bottom), (left, right)), mode="reflect")
    np.testing.assert_array_equal(reflect_pad(image, *pads).numpy(), expected)


def test_read_only_pixels_are_never_written() -> None:
    pixels = np.frombuffer(bytes(np.full(4 * 5 * 4, 3.0, np.float32).tobytes()), np.float32)
    pixels = pixels.reshape(4, 5, 4)  # over 1.0 on purpose: clamping must not write back
    tensor = to_unit_tensor(pixels, torch.device("cpu"))
    pack_unit([tensor[:3], tensor[3:]], np.dtype(np.float32))
    assert not pixels.flags.writeable and float(pixels.max()) == 3.0
