"""core.models.sources and checkpoint kind detection, on fake install layouts (configs and
safetensors headers only; nothing is loaded)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from sfumato.core.models.diffusion_loader import checkpoint_kind, detect_diffusion_kind
from sfumato.core.models.sources import scan_model_sources

pytestmark = pytest.mark.unit

UNET_IN = "model.diffusion_model.input_blocks.0.0.weight"


def _diffusers(folder: Path, class_name: str, unet_in: int | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": class_name}))
    if unet_in is not None:
        (folder / "unet").mkdir()
        (folder / "unet" / "config.json").write_text(json.dumps({"in_channels": unet_in}))
    return folder


def _checkpoint(path: Path, tensors: dict[str, tuple[int, ...]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: torch.zeros(shape) for k, shape in tensors.items()}, str(path))
    return path


SDXL_INPAINT = {UNET_IN: (4, 9, 3, 3), "conditioner.embedders.1.model.ln_final.weight": (2,)}
SD15 = {UNET_IN: (4, 4, 3, 3), "cond_stage_model.transformer.text_model.x": (2,)}
SD2 = {UNET_IN: (4, 4, 3, 3), "cond_stage_model.model.ln_final.weight": (2,)}
FLUX_FILL = {"img_in.weight": (8, 384), "double_blocks.0.img_attn.qkv.weight": (2,)}
FLUX = {"model.diffusion_model.img_in.weight": (8, 64),
        "model.diffusion_model.double_blocks.0.img_attn.qkv.weight": (2,)}


@pytest.mark.parametrize(
    ("tensors", "kind"),
    [(SDXL_INPAINT, "sdxl-inpaint"), (SD15, "sd15"), (SD2, None), (FLUX_FILL, "flux-fill"),
     (FLUX, "flux"), ({"body.0.weight": (3,)}, None)],
)
def test_checkpoint_kind_from_tensor_names(tensors: dict, kind: str | None) -> None:
    assert checkpoint_kind(tensors) == kind


def test_detect_reads_model_index_and_the_denoisers_input_channels(tmp_path: Path) -> None:
    assert detect_diffusion_kind(_diffusers(tmp_path / "a", "StableDiffusionXLPipeline", 4)) == (
        "sdxl", "diffusers")
    # saved under the plain class name, but the UNet takes a mask: an inpainting model
    assert detect_diffusion_kind(_diffusers(tmp_path / "b", "StableDiffusionPipeline", 9)) == (
        "sd15-inpaint", "diffusers")
    assert detect_diffusion_kind(_diffusers(tmp_path / "c", "KandinskyPipeline")) is None
    assert detect_diffusion_kind(tmp_path / "nothing") is None
    single = _checkpoint(tmp_path / "x.safetensors", SDXL_INPAINT)
    assert detect_diffusion_kind(single) == ("sdxl-inpaint", "single_file")
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(single.read_bytes()[:-5])
    assert detect_diffusion_kind(damaged) is None


def test_scan_finds_hf_cache_comfyui_and_a1111_models(tmp_path: Path) -> None:
    root = tmp_path / "install"
    hub = root / "hub" / "models--someone--Tiny-SDXL"
    _diffusers(hub / "snapshots" / "old", "StableDiffusionXLPipeline", 4)
    _diffusers(hub / "snapshots" / "abc123", "StableDiffusionXLInpaintPipeline", 9)
    (hub / "refs").mkdir()
    (hub / "refs" / "main").write_text("abc123\n")
    _checkpoint(root / "models" / "checkpoints" / "xl" / "Juggernaut Inpaint.safetensors",
                SDXL_INPAINT)
    _checkpoint(root / "models" / "diffusion_models" / "flux1-fill.safetensors", FLUX_FILL)
    _checkpoint(root / "models" / "loras" / "style.safetensors", {"lora_up.weight": (2,)})
    _checkpoint(root / "models" / "checkpoints" / "sd2.safetensors", SD2)
    (root / "models" / "checkpoints" / "old.ckpt").write_bytes(b"pickle")
    (root / "models" / "checkpoints" / "broken.safetensors").write_bytes(b"\x00" * 3)
    _checkpoint(root / "models" / "Stable-diffusion" / "v1-5.safetensors", SD15)
    _diffusers(root / "models" / "diffusers" / "my-flux", "FluxFillPipeline")

    found = {c.name: c for c in scan_model_sources(root)}
    assert set(found) == {"tiny-sdxl", "juggernaut-inpaint", "flux1-fill", "v1-5", "my-flux"}
    hf = found["tiny-sdxl"]
    assert hf.kind == "sdxl-inpaint" and hf.path.name == "abc123" and hf.source == "huggingface"
    assert not hf.needs_config
    comfy = found["juggernaut-inpaint"]
    assert (comfy.kind, comfy.format, comfy.needs_config) == ("sdxl-inpaint", "single_file", True)
    assert found["flux1-fill"].kind == "flux-fill" and found["v1-5"].kind == "sd15"
    assert found["my-flux"].format == "diffusers"


def test_scan_of_one_model_folder_or_hf_repo_and_unique_names(tmp_path: Path) -> None:
    single = _diffusers(tmp_path / "Solo Model", "FluxPipeline")
    assert [(c.name, c.kind) for c in scan_model_sources(single)] == [("solo-model", "flux")]
    repo = tmp_path / "models--org--thing"
    _diffusers(repo / "snapshots" / "r1", "StableDiffusionInpaintPipeline", 9)
    assert [c.name for c in scan_model_sources(repo)] == ["thing"]
    plain = tmp_path / "plain"
    _checkpoint(plain / "a.safetensors", SD15)
    _checkpoint(plain / "checkpoints" / "A.safetensors", SD15)
    assert sorted(c.name for c in scan_model_sources(plain)) == ["a", "a-2"]
