"""A single original-layout (A1111/ComfyUI) SD 1.5 checkpoint, registered with a diffusers config
folder, loads through diffusers' single-file loader offline, keeps every weight, and paints the
same pixels as the diffusers folder it was written from."""

from __future__ import annotations

import socket
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sfumato.bridge.raster import Layout
from sfumato.core.models.diffusion_loader import load_pipeline
from sfumato.core.models.model_add import register_model
from sfumato.core.models.registry import ModelEntry, Registry
from sfumato.core.pixels.arrays import array_to_raster
from sfumato.core.task_api import TaskContext
from sfumato.core.tasks import inpaint, refine

from tests.support.original_layout import UNET_PREFIX, save_original_layout_checkpoint
from tests.support.tiny_models import build_tiny_model

pytestmark = pytest.mark.integration

KINDS = ("sd15-inpaint", "sd15")
COMPONENTS = ("unet", "vae", "text_encoder")
HEIGHT, WIDTH = 96, 128


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A home registering each kind twice: as its diffusers folder (by the kind's name) and as
    an original-layout checkpoint with that folder as --config (`<kind>-single`)."""
    from sfumato.core.config import Settings
    from sfumato.core.models.provider import WorkerModels

    home = tmp_path_factory.mktemp("single-file-home")
    registry = Registry(home)
    entries: dict[str, ModelEntry] = {}
    for kind in KINDS:
        folder = build_tiny_model(kind, home / "models" / "diffusers" / kind)
        checkpoint = save_original_layout_checkpoint(
            folder, home / "checkpoints" / f"{kind}.safetensors"
        )
        entries[kind] = register_model(registry, kind, folder)
        entries[f"{kind}-single"] = register_model(registry, f"{kind}-single", checkpoint,
                                                   config=folder)
    torch.set_num_threads(1)  # two shared cores: one thread is much faster for tiny models
    provider = WorkerModels(Settings(home=home, endpoint="tcp://127.0.0.1:0"), "cpu")
    return {"home": home, "entries": entries, "provider": provider}


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading must never reach for a hub: any connection attempt fails the test."""
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network access attempted: {args[1:] or kwargs}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("kind", KINDS)
def test_the_checkpoint_is_original_layout_and_registers_as_single_file(
    store: dict[str, Any], kind: str
) -> None:
    entry = store["entries"][f"{kind}-single"]
    assert (entry.kind, entry.format) == (kind, "single_file")
    assert entry.config == str(store["home"] / "models" / "diffusers" / kind)
    keys = load_file(entry.path).keys()
    assert {k.split(".")[0] for k in keys} == {"model", "first_stage_model", "cond_stage_model"}
    assert all(k.startswith((UNET_PREFIX, "first_stage_model.", "cond_stage_model.transformer."))
               for k in keys)


@pytest.mark.parametrize("kind", KINDS)
def test_the_single_file_loads_offline_with_every_weight_of_the_folder(
    store: dict[str, Any], kind: str
) -> None:
    single = load_pipeline(store["entries"][f"{kind}-single"], "inpaint", "cpu", {})
    folder = load_pipeline(store["entries"][kind], "inpaint", "cpu", {})
    assert type(single) is type(folder)
    for name in COMPONENTS:
        got, want = getattr(single, name), getattr(folder, name)
        assert type(got) is type(want)
        got_state, want_state = got.state_dict(), want.state_dict()
        assert got_state.keys() == want_state.keys(), name
        changed = [k for k in want_state if not torch.equal(got_state[k], want_state[k])]
        assert changed == [], f"{name}: {changed[:5]}"
    for name in ("unet", "vae", "scheduler"):  # `_name_or_path` and such are bookkeeping
        assert _public(getattr(single, name).config) == _public(getattr(folder, name).config)
    assert _public(single.text_encoder.config.to_dict()) == _public(
        folder.text_encoder.config.to_dict())
    assert single.tokenizer.get_vocab() == folder.tokenizer.get_vocab()


def _public(config: Any) -> dict[str, Any]:
    return {k: v for k, v in dict(config).items() if not k.startswith("_")}


def _inputs(task: str) -> list[Any]:
    rng = np.random.default_rng(9)
    layer = rng.integers(0, 256, (HEIGHT, WIDTH, 4), dtype=np.uint8)
    layer[..., 3] = 255
    rasters = [array_to_raster(layer, Layout.RGBA8)]
    if task == "inpaint":
        mask = np.zeros((HEIGHT, WIDTH), np.uint8)
        mask[30:70, 40:100] = 255
        rasters.append(array_to_raster(mask, Layout.GRAY8))
    return rasters


@pytest.mark.parametrize(("kind", "task"), [("sd15-inpaint", "inpaint"),
                                            ("sd15-inpaint", "refine"), ("sd15", "refine")])
def test_a_task_on_the_single_file_paints_what_the_folder_paints(
    store: dict[str, Any], kind: str, task: str
) -> None:
    run = {"inpaint": inpaint.run, "refine": refine.run}[task]
    params = {"steps": 2, "resolution": 256, "seed": 7, "prompt": "a red apple"}
    if task == "refine":
        params["strength"] = 0.6
    results = [
        run(TaskContext(params=params, rasters=_inputs(task), model_id=name,
                        models=store["provider"]))
        for name in (f"{kind}-single", kind)
    ]
    single, folder = (np.frombuffer(bytes(r.rasters[0].data), np.uint8) for r in results)
    assert results[0].info["offset"] == results[1].info["offset"]
    assert single.shape == folder.shape
    assert np.array_equal(single, folder)  # bit-identical: same weights, same seed
