"""core.models.diffusion_loader on tiny real diffusers folders: the pipeline class per task,
shared components, and refusals of unsafe, damaged or incomplete models."""

from __future__ import annotations

import gc
import shutil
import weakref
from pathlib import Path

import pytest
from sfumato.bridge.protocol import ErrorCode
from sfumato.core.errors import SfumatoError
from sfumato.core.models.diffusion_loader import (
    TASK_PIPELINES,
    check_diffusers_folder,
    detect_diffusion_kind,
    load_pipeline,
    pipeline_bytes,
)
from sfumato.core.models.registry import ModelEntry

from tests.support.tiny_models import KINDS

pytest_plugins = ["tests.support.tiny_fixtures"]  # the tiny model store and provider fixtures

pytestmark = pytest.mark.integration


def _entry(folder: Path, kind: str, fmt: str = "diffusers",
           config: str | None = None) -> ModelEntry:
    return ModelEntry(name=folder.name, kind=kind, path=str(folder), format=fmt, config=config)


def _copy(tiny_home: Path, kind: str, dest: Path) -> Path:
    return Path(shutil.copytree(tiny_home / "models" / "diffusers" / kind, dest))


def test_every_kind_is_detected_and_every_task_gets_its_pipeline_class(tiny_home: Path) -> None:
    shared: dict = {}
    for kind in KINDS:
        folder = tiny_home / "models" / "diffusers" / kind
        assert detect_diffusion_kind(folder) == (kind, "diffusers")
        for task in ("inpaint", "refine"):
            expected = TASK_PIPELINES.get((kind, task))
            if expected is None:
                with pytest.raises(SfumatoError) as caught:
                    load_pipeline(_entry(folder, kind), task, "cpu", shared)
                assert caught.value.code is ErrorCode.WRONG_MODEL_KIND
                continue
            pipe = load_pipeline(_entry(folder, kind), task, "cpu", shared)
            assert type(pipe).__name__ == expected


def test_one_load_serves_both_tasks_and_is_freed_with_its_pipelines(tiny_home: Path) -> None:
    folder = tiny_home / "models" / "diffusers" / "sdxl"
    shared: dict = {}
    inpaint = load_pipeline(_entry(folder, "sdxl"), "inpaint", "cpu", shared)
    refine = load_pipeline(_entry(folder, "sdxl"), "refine", "cpu", shared)
    assert type(inpaint).__name__ != type(refine).__name__
    assert inpaint.unet is refine.unet and inpaint.vae is refine.vae
    assert inpaint.scheduler is not refine.scheduler  # schedulers hold per-call state
    size = pipeline_bytes(inpaint)
    params = sum(p.numel() * p.element_size() for name in ("unet", "vae", "text_encoder",
                 "text_encoder_2") for p in getattr(inpaint, name).parameters())
    assert params <= size < params * 1.1
    unet = weakref.ref(inpaint.unet)
    del inpaint, refine
    gc.collect()
    assert unet() is None  # `shared` does not keep an evicted model in memory
    again = load_pipeline(_entry(folder, "sdxl"), "inpaint", "cpu", shared)
    assert again.unet is not None


def test_pickle_weights_are_refused_before_anything_loads(tiny_home: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_home, "sd15", tmp_path / "pickled")
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.rename(weights.with_name("diffusion_pytorch_model.bin"))
    with pytest.raises(SfumatoError) as caught:
        load_pipeline(_entry(folder, "sd15"), "refine", "cpu", {})
    assert caught.value.code is ErrorCode.UNSAFE_WEIGHTS
    assert "diffusion_pytorch_model.bin" in caught.value.message


def test_damaged_or_incomplete_folders_are_corrupt_weights(tiny_home: Path,
                                                           tmp_path: Path) -> None:
    truncated = _copy(tiny_home, "sd15", tmp_path / "truncated")
    vae = truncated / "vae" / "diffusion_pytorch_model.safetensors"
    vae.write_bytes(vae.read_bytes()[:-100])
    missing = _copy(tiny_home, "sd15", tmp_path / "missing")
    shutil.rmtree(missing / "text_encoder")
    no_index = _copy(tiny_home, "sd15", tmp_path / "no-index")
    (no_index / "model_index.json").write_text("{not json")
    for folder, word in ((truncated, "vae"), (missing, "text_encoder"),
                         (no_index, "model_index.json"), (tmp_path / "gone", "gone")):
        with pytest.raises(SfumatoError) as caught:
            load_pipeline(_entry(folder, "sd15"), "refine", "cpu", {})
        assert caught.value.code is ErrorCode.CORRUPT_WEIGHTS, caught.value
        assert word in caught.value.message


def test_fp16_only_folders_load_their_variant(tiny_home: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_home, "sd15", tmp_path / "fp16")
    for weights in folder.glob("*/*.safetensors"):
        weights.rename(weights.with_name(weights.name.replace(".safetensors",
                                                              ".fp16.safetensors")))
    assert check_diffusers_folder(folder) == "fp16"
    pipe = load_pipeline(_entry(folder, "sd15"), "refine", "cpu", {})
    assert type(pipe).__name__ == "StableDiffusionImg2ImgPipeline"


def test_single_file_checkpoints_need_safetensors_and_a_config(tiny_home: Path,
                                                              tmp_path: Path) -> None:
    pickle = tmp_path / "model.ckpt"
    pickle.write_bytes(b"not loaded")
    with pytest.raises(SfumatoError) as caught:
        load_pipeline(_entry(pickle, "sd15", "single_file"), "refine", "cpu", {})
    assert caught.value.code is ErrorCode.UNSAFE_WEIGHTS
    checkpoint = tiny_home / "models" / "diffusers" / "sd15" / "unet" / (
        "diffusion_pytorch_model.safetensors")
    with pytest.raises(SfumatoError) as caught:
        load_pipeline(_entry(checkpoint, "sd15", "single_file"), "refine", "cpu", {})
    assert caught.value.code is ErrorCode.CORRUPT_WEIGHTS and "--config" in caught.value.message
    # a config folder whose weights are pickles is refused too
    config = _copy(tiny_home, "sd15", tmp_path / "config")
    weights = config / "text_encoder" / "model.safetensors"
    weights.rename(weights.with_name("pytorch_model.bin"))
    entry = _entry(checkpoint, "sd15", "single_file", config=str(config))
    with pytest.raises(SfumatoError) as caught:
        load_pipeline(entry, "refine", "cpu", {})
    assert caught.value.code is ErrorCode.UNSAFE_WEIGHTS
