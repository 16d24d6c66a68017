"""The upscale task with a tiny random-weight compact model behind a fake ModelProvider."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any
from unittest import mock

import numpy as np
import pytest
import torch
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.raster import Layout, Raster
from sfumato.core.errors import JobCancelled, SfumatoError
from sfumato.core.models.registry import ModelEntry
from sfumato.core.pixels.arrays import array_to_raster, raster_to_array
from sfumato.core.task_api import CancelToken, Limits, TaskContext
from sfumato.core.tasks import upscale

from tests.support.tiny_upscaler import build_tiny_upscaler

pytestmark = pytest.mark.unit


class FakeModels:
    def __init__(self, model: Any) -> None:
        self.model = model
        self.asked: list[tuple[str | None, frozenset[str], str | None]] = []

    def entry(self, model_id: str | None, kinds: frozenset[str], default: str | None) -> ModelEntry:
        self.asked.append((model_id, kinds, default))
        return ModelEntry(name=model_id or str(default), kind="upscaler", path="-", format="x")

    def load(self, entry: ModelEntry) -> Any:
        return self.model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from sfumato.core.models.upscaler_loader import load_upscaler

    path = build_tiny_upscaler(tmp_path_factory.mktemp("tiny") / "tiny.safetensors", scale=2)
    return load_upscaler(path)


def _image(height: int, width: int, seed: int = 0) -> np.ndarray:
    # smooth colour ramps plus a little noise: something with structure at every tile
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(seed)
    rgb = np.stack([xx / width, yy / height, (xx + yy) / (width + height)], axis=2)
    rgb = np.clip(rgb + rng.normal(0, 0.03, rgb.shape), 0, 1)
    alpha = (xx > width / 2).astype(np.float32)[:, :, None]
    return np.concatenate([rgb, alpha], axis=2)


def _raster(unit: np.ndarray, layout: Layout) -> Raster:
    if layout is Layout.GRAY8:
        return array_to_raster(np.rint(unit[:, :, :1] * 255).astype(np.uint8), layout)
    dtype = {1: np.uint8, 2: np.uint16, 4: np.float32}[layout.bytes_per_channel]
    top = {1: 255, 2: 65535, 4: 1}[layout.bytes_per_channel]
    values = unit * top
    return array_to_raster(
        values.astype(dtype) if top == 1 else np.rint(values).astype(dtype), layout
    )


def _run(model: Any, raster: Raster, **params: Any) -> tuple[Raster, dict[str, Any], list]:
    steps: list[tuple[int, int, str]] = []
    ctx = TaskContext(
        params=params,
        rasters=[raster],
        model_id=None,
        models=FakeModels(model),
        progress=lambda step, total, stage: steps.append((step, total, stage)),
    )
    output = upscale.run(ctx)
    return output.rasters[0], output.info, steps


@pytest.mark.parametrize("layout", [Layout.RGBA8, Layout.BGRA8, Layout.RGBA16, Layout.RGBAF32])
def test_layout_family_and_alpha_are_kept(tiny: Any, layout: Layout) -> None:
    raster, info, steps = _run(tiny, _raster(_image(20, 30), layout))
    assert (raster.layout, raster.width, raster.height) == (layout, 60, 40)
    assert info == {"scale": 2.0, "model": "realesrgan-x4plus", "width": 60, "height": 40,
                    "tiles": 1, "work_ratio": round(40 * 50 / (20 * 30), 3),  # 10 px borders
                    "warnings": []}
    assert steps[-1][0] == steps[-1][1] > 1 and steps[-1][2] == "upscale"  # counted in layers
    alpha = raster_to_array(raster)[:, :, 3].astype(np.float64)
    top = {1: 255, 2: 65535, 4: 1}[layout.bytes_per_channel]
    assert alpha[:, :25].max() == 0 and alpha[:, 35:].min() == top


def test_bgra_channel_order_survives(tiny: Any) -> None:
    image = _image(16, 16)
    image[:, :, 3] = 1
    out_rgba = raster_to_array(_run(tiny, _raster(image, Layout.RGBA8))[0])
    out_bgra = raster_to_array(_run(tiny, _raster(image, Layout.BGRA8))[0])
    np.testing.assert_array_equal(out_rgba, out_bgra)  # raster_to_array gives RGBA for both


def test_sixteen_bit_keeps_more_than_eight_bits(tiny: Any) -> None:
    raster, _, _ = _run(tiny, _raster(_image(24, 24), Layout.RGBA16))
    rgb = raster_to_array(raster)[:, :, :3]
    assert np.count_nonzero(rgb % 257) > rgb.size // 2


def test_gray8_comes_back_gray8(tiny: Any) -> None:
    raster, info, _ = _run(tiny, _raster(_image(10, 12), Layout.GRAY8))
    assert (raster.layout, raster.width, raster.height) == (Layout.GRAY8, 24, 20)


@pytest.mark.parametrize("scale", [0.5, 1.0, 1.37, 2.5, 3.0, 5.0])
def test_any_scale_gives_the_exact_size(tiny: Any, scale: float) -> None:
    raster, info, _ = _run(tiny, _raster(_image(17, 23), Layout.RGBA8), scale=scale)
    assert (raster.width, raster.height) == (round(23 * scale), round(17 * scale))
    assert (info["width"], info["height"], info["scale"]) == (raster.width, raster.height, scale)


def test_region_upscales_only_the_region_and_says_where(tiny: Any) -> None:
    image = _raster(_image(40, 50), Layout.RGBA8)
    whole, _, _ = _run(tiny, image)
    part, info, _ = _run(tiny, image, region=[10, 6, 20, 16])
    assert (part.width, part.height, info["offset"]) == (40, 32, [20, 12])
    # seen in its real surroundings, the region matches the same place in the whole result
    expected = raster_to_array(whole)[12:44, 20:60].astype(int)
    assert np.abs(raster_to_array(part).astype(int) - expected).max() <= 1


def test_tiled_and_whole_agree(tiny: Any) -> None:
    image = _raster(_image(90, 120, seed=3), Layout.RGBA8)
    whole, one_info, one = _run(tiny, image)
    tiled, info, steps = _run(tiny, image, tile=32)
    assert one_info["tiles"] == 1 and info["tiles"] > 4
    layers = one[-1][1]
    assert steps[-1][:2] == (info["tiles"] * layers,) * 2
    assert all(b[0] > a[0] for a, b in zip(steps, steps[1:], strict=False))
    difference = raster_to_array(tiled).astype(int) - raster_to_array(whole).astype(int)
    assert np.abs(difference).max() <= 1


class _Nearest:
    """A stand-in model that only repeats pixels: whatever comes back differently was changed
    by the task's own conversions."""

    scale, tags = 2, []
    architecture = SimpleNamespace(id="Compact")
    device, dtype = torch.device("cpu"), torch.float32

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.repeat_interleave(2, -1).repeat_interleave(2, -2)


@pytest.mark.parametrize(
    "layout", [Layout.RGBA8, Layout.BGRA8, Layout.RGBA16, Layout.RGBAF32, Layout.GRAY8]
)
def test_colour_conversions_round_trip_exactly(layout: Layout) -> None:
    rng = np.random.default_rng(5)
    source = _raster(rng.random((9, 11, 4)), layout)
    raster, _, _ = _run(_Nearest(), source)
    expected = raster_to_array(source).repeat(2, 0).repeat(2, 1)
    got = raster_to_array(raster)
    channels = slice(0, 1) if layout is Layout.GRAY8 else slice(0, 3)
    np.testing.assert_allclose(
        got[:, :, channels].astype(np.float64), expected[:, :, channels], atol=2e-6
    )


class _Flaky:
    """Raises out-of-memory for inputs above `limit` pixels, like a small GPU would."""

    def __init__(self, inner: Any, limit: int) -> None:
        self.inner, self.limit, self.sizes = inner, limit, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        self.sizes.append(tensor.shape[-1] * tensor.shape[-2])
        if tensor.shape[-1] * tensor.shape[-2] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")
        return self.inner(tensor)


def test_out_of_memory_shrinks_tiles_and_retries(tiny: Any) -> None:
    flaky = _Flaky(tiny, limit=110 * 110)
    image = _raster(_image(120, 160), Layout.RGBA8)
    raster, _, _ = _run(flaky, image)
    assert raster.width == 320 and max(flaky.sizes) > flaky.limit
    expected = raster_to_array(_run(tiny, image)[0]).astype(int)
    assert np.abs(raster_to_array(raster).astype(int) - expected).max() <= 1


def test_out_of_memory_at_the_smallest_tile_is_reported(tiny: Any) -> None:
    with pytest.raises(SfumatoError) as caught:
        _run(_Flaky(tiny, limit=10), _raster(_image(40, 40), Layout.RGBA8))
    assert caught.value.code is ErrorCode.OUT_OF_MEMORY


def test_cancel_stops_between_tiles(tiny: Any) -> None:
    class Flag:
        calls = 0

        def is_set(self) -> bool:
            self.calls += 1
            return self.calls > 2

    ctx = TaskContext(
        params={"tile": 32},
        rasters=[_raster(_image(100, 100), Layout.RGBA8)],
        model_id=None,
        models=FakeModels(tiny),
        cancel=CancelToken(Flag()),
    )
    with pytest.raises(JobCancelled):
        upscale.run(ctx)


def test_cancel_stops_inside_a_tile(tiny: Any) -> None:
    class Flag:
        calls = 0

        def is_set(self) -> bool:
            self.calls += 1
            return self.calls > 3  # checked before the tile, then between its layers

    steps: list[tuple[int, int]] = []
    ctx = TaskContext(
        params={},
        rasters=[_raster(_image(60, 60), Layout.RGBA8)],
        model_id=None,
        models=FakeModels(tiny),
        progress=lambda step, total, stage: steps.append((step, total)),
        cancel=CancelToken(Flag()),
    )
    with pytest.raises(JobCancelled):
        upscale.run(ctx)
    assert not any(step == total for step, total in steps)  # the one tile never finished


@pytest.mark.parametrize(
    ("raster", "params", "code"),
    [
        (Raster(0, 5, Layout.RGBA8, b""), {}, ErrorCode.EMPTY_IMAGE),
        (Raster(2, 2, Layout.GRAY16, bytes(8)), {}, ErrorCode.UNSUPPORTED_LAYOUT),
        (Raster(4, 4, Layout.RGBA8, bytes(64)), {"scale": -1}, ErrorCode.BAD_PARAMS),
        (Raster(4, 4, Layout.RGBA8, bytes(64)), {"scael": 2}, ErrorCode.BAD_PARAMS),
        (Raster(4, 4, Layout.RGBA8, bytes(64)), {"scale": "2"}, ErrorCode.BAD_PARAMS),
        (Raster(4, 4, Layout.RGBA8, bytes(64)), {"scale": 0.01}, ErrorCode.BAD_PARAMS),
        (Raster(4, 4, Layout.RGBA8, bytes(64)), {"tile": -1}, ErrorCode.BAD_PARAMS),
        (
            Raster(4, 4, Layout.RGBA8, bytes(64)),
            {"region": [9, 9, 2, 2]},
            ErrorCode.EMPTY_SELECTION,
        ),
        (Raster(4, 4, Layout.RGBA8, bytes(64)), {"region": [0, 0, 2]}, ErrorCode.BAD_PARAMS),
        (Raster(4, 4, Layout.RGBA8, bytes(64)), {"scale": 1e9}, ErrorCode.BAD_PARAMS),
    ],
)
def test_bad_input_is_refused_with_a_reason(
    tiny: Any, raster: Raster, params: dict[str, Any], code: ErrorCode
) -> None:
    with pytest.raises(SfumatoError) as caught:
        _run(tiny, raster, **params)
    assert caught.value.code is code
    assert caught.value.message


def test_an_output_over_the_daemons_limit_is_refused_before_any_tile(tiny: Any) -> None:
    ctx = TaskContext(params={"scale": 16.0}, rasters=[Raster(4, 4, Layout.RGBA8, bytes(64))],
                      model_id=None, models=FakeModels(tiny),
                      limits=Limits(max_output_pixels=32 * 32))
    with pytest.raises(SfumatoError) as caught:
        upscale.run(ctx)
    assert caught.value.code is ErrorCode.IMAGE_TOO_LARGE


def test_model_is_asked_for_by_kind_with_the_default(tiny: Any) -> None:
    models = FakeModels(tiny)
    ctx = TaskContext(
        params={}, rasters=[_raster(_image(8, 8), Layout.RGBA8)], model_id=None, models=models
    )
    upscale.run(ctx)
    # a GAN upscaler or a SUPIR model may be named; with none, the default GAN upscaler
    assert models.asked == [(None, frozenset({"upscaler", "supir"}), "realesrgan-x4plus")]
    assert upscale.NAME == "upscale" and upscale.MODEL_KINDS == frozenset({"upscaler", "supir"})


@pytest.mark.parametrize("scale", [1, 2, 4, 8])
def test_windows_keep_feature_maps_indexable(scale: int) -> None:
    model = SimpleNamespace(scale=scale, dtype=torch.float16, device=torch.device("cpu"),
                            architecture=SimpleNamespace(id="Compact"))
    with mock.patch.object(upscale, "free_bytes", return_value=1 << 50):  # memory no limit
        window = upscale._window_limit(model, context=16, batch=1)
    assert window * upscale.OUTPUT_FEATURES * scale**2 < 2**31
    if scale == 4:  # a 1024 px layer and its reflected border upscale in one piece
        assert window >= (1024 + 2 * upscale.PRE_PAD) ** 2
