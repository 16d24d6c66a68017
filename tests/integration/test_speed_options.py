"""Speed options change how fast, never what the artist gets: batched upscaler tiles, the
configured precision, torch.compile, SDPA attention and VAE tiling, on tiny real models
loaded through the real loaders (CPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.raster import Layout
from sfumato.core.config import Settings, load_settings
from sfumato.core.device.speed_options import (
    SpeedOptions,
    attention_kinds,
    pipeline_dtype,
    tile_vae_if_large,
    use_sdpa,
)
from sfumato.core.errors import SfumatoError
from sfumato.core.models.provider import WorkerModels
from sfumato.core.models.registry import ModelEntry, Registry
from sfumato.core.pixels.arrays import array_to_raster, raster_to_array
from sfumato.core.task_api import TaskContext
from sfumato.core.tasks import inpaint, upscale

from tests.support.tiny_upscaler import build_tiny_upscaler

pytest_plugins = ["tests.support.tiny_fixtures"]

pytestmark = pytest.mark.integration


def _photo(height: int, width: int, layout: Layout = Layout.RGBA16) -> Any:
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([xx / width, yy / height, (xx * yy) / (width * height)], axis=2)
    unit = np.clip(np.concatenate([rgb, np.ones((height, width, 1))], axis=2)
                   + rng.normal(0, 0.02, (height, width, 4)), 0, 1)
    top = 65535 if layout is Layout.RGBA16 else 255
    dtype = np.uint16 if layout is Layout.RGBA16 else np.uint8
    return array_to_raster(np.rint(unit * top).astype(dtype), layout)


def _upscaler_home(tmp_path: Path, config: str = "") -> WorkerModels:
    home = tmp_path / "home"
    home.mkdir(parents=True)
    path = build_tiny_upscaler(home / "tiny-x2.safetensors")
    Registry(home).add(ModelEntry(name="tiny", kind="upscaler", path=str(path),
                                  format="safetensors"))
    if config:
        (home / "config.toml").write_text("[daemon]\n" + config)
    return WorkerModels(load_settings(home=home), "cpu")


def _upscale(models: WorkerModels, raster: Any, **params: Any) -> tuple[np.ndarray, list]:
    steps: list[tuple[int, int, str]] = []
    ctx = TaskContext(params=params, rasters=[raster], model_id="tiny", models=models,
                      progress=lambda s, t, stage: steps.append((s, t, stage)))
    return raster_to_array(upscale.run(ctx).rasters[0]), steps


def test_batched_tiles_give_the_same_pixels_as_one_at_a_time(tmp_path: Path) -> None:
    models = _upscaler_home(tmp_path)
    layer = _photo(100, 150)
    single, single_steps = _upscale(models, layer, tile=32, batch=1)
    batched, batched_steps = _upscale(models, layer, tile=32, batch=4)
    assert np.abs(single.astype(np.int32) - batched.astype(np.int32)).max() <= 1
    assert single_steps[-1][:2] == batched_steps[-1][:2]  # every tile, counted the same
    assert len(batched_steps) < len(single_steps)  # fewer, larger forward passes


def test_a_bad_batch_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    models = _upscaler_home(tmp_path)
    with pytest.raises(SfumatoError) as err:  # 0 means "the daemon's", as front ends show it
        _upscale(models, _photo(40, 40), batch=-1)
    assert err.value.code is ErrorCode.BAD_PARAMS
    assert "batch must be a whole number from 1 to 64" in err.value.message


def test_config_dtype_reaches_the_loaded_upscaler(tmp_path: Path) -> None:
    import torch

    fp32 = _upscaler_home(tmp_path / "a")
    bf16 = _upscaler_home(tmp_path / "b", 'dtype = "bf16"\n')
    entry = bf16.entry("tiny", frozenset({"upscaler"}), None)
    assert bf16.load(entry).dtype == torch.bfloat16
    assert fp32.load(fp32.entry("tiny", frozenset({"upscaler"}), None)).dtype == torch.float32
    layer = _photo(48, 64, Layout.RGBA8)
    exact, _ = _upscale(fp32, layer)
    coarse, _ = _upscale(bf16, layer)
    difference = np.abs(exact.astype(np.int32) - coarse.astype(np.int32))
    assert difference.mean() < 2.0  # bf16 rounds, it does not change the picture


def test_an_unknown_dtype_in_config_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SfumatoError, match="dtype 'int4'"):
        _upscaler_home(tmp_path, 'dtype = "int4"\n')


def test_dtype_defaults_by_device_and_flux_never_runs_in_fp16() -> None:
    import torch

    assert pipeline_dtype(SpeedOptions(), "cpu", "sdxl-inpaint") == torch.float32
    assert pipeline_dtype(SpeedOptions(dtype="fp16"), "cuda", "sdxl") == torch.float16
    assert pipeline_dtype(SpeedOptions(dtype="fp16"), "cuda", "flux-fill") == torch.bfloat16


def test_compiled_upscaler_gives_the_same_pixels(tmp_path: Path) -> None:
    # one tile of one shape: a single compile (about 10 s on a small CPU)
    plain = _upscaler_home(tmp_path / "a")
    compiled = _upscaler_home(tmp_path / "b", "compile = true\n")
    layer = _photo(40, 56)
    expected, _ = _upscale(plain, layer)
    got, _ = _upscale(compiled, layer)
    assert np.abs(expected.astype(np.int32) - got.astype(np.int32)).max() <= 1
    model = compiled.load(compiled.entry("tiny", frozenset({"upscaler"}), None))
    assert model.model._sfumato_compile_s > 0  # the compile time is measured and reported
    cache = tmp_path / "b" / "home" / "cache" / "inductor"
    assert cache.is_dir() and any(cache.iterdir())  # compiled code kept for the next start


def test_pipelines_use_sdpa_attention(tiny_provider: Any) -> None:
    from diffusers.models.attention_processor import AttnProcessor

    pipe = tiny_provider.load_pipeline(
        tiny_provider.entry("sdxl-inpaint", frozenset({"sdxl-inpaint"}), None), "inpaint")
    assert attention_kinds(pipe.unet) == {"AttnProcessor2_0"}
    pipe.vae.set_attn_processor(AttnProcessor())  # the plain, matrix-in-memory kind
    use_sdpa(pipe.vae)
    assert attention_kinds(pipe.vae) == {"AttnProcessor2_0"}


def test_vae_tiles_only_above_the_threshold_and_the_result_stays_close(
    tiny_home: Path,
) -> None:
    import torch

    torch.set_num_threads(1)
    layer = _photo(96, 128, Layout.RGBA8)
    mask = np.zeros((96, 128), np.uint8)
    mask[30:70, 40:100] = 255
    rasters = [layer, array_to_raster(mask, Layout.GRAY8)]
    params = {"steps": 2, "resolution": 256, "seed": 5, "prompt": "a lamp"}
    results, tiled = {}, {}
    for name, threshold in (("whole", 0), ("tiled", 64 * 64)):
        settings = Settings(home=tiny_home, endpoint="tcp://127.0.0.1:0",
                            vae_tiling_pixels=threshold)
        models = WorkerModels(settings, "cpu")
        ctx = TaskContext(params=params, rasters=rasters, model_id="sdxl-inpaint",
                          models=models)
        results[name] = raster_to_array(inpaint.run(ctx).rasters[0]).astype(np.int32)
        pipe = models.load_pipeline(models.entry("sdxl-inpaint", frozenset({"sdxl-inpaint"}),
                                                 None), "inpaint")
        tiled[name] = bool(pipe.vae.use_tiling)
    assert tiled == {"whole": False, "tiled": True}
    assert np.abs(results["whole"] - results["tiled"]).mean() < 24  # same picture, seams aside
    # and a small crop on the tiled pipeline goes back to one whole-image VAE pass
    assert tile_vae_if_large(pipe, 32, 32) is False


def test_models_stay_loaded_between_jobs(tmp_path: Path, tiny_provider: Any) -> None:
    models = _upscaler_home(tmp_path)
    for _ in range(3):
        _upscale(models, _photo(40, 40))
    assert models.describe()["loads"] == 1  # loaded by the first job, warm for the others
    entry = tiny_provider.entry("sdxl-inpaint", frozenset({"sdxl-inpaint"}), None)
    before = tiny_provider.describe()["loads"]
    first = tiny_provider.load_pipeline(entry, "inpaint")
    assert tiny_provider.load_pipeline(entry, "inpaint") is first
    assert tiny_provider.describe()["loads"] <= before + 1
