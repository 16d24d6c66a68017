"""A tiny random-weight SUPIR checkpoint in the published (sgm) key layout, fitting the tiny
SDXL of tiny_models.py, saved as .safetensors like the conversions of SUPIR-v0Q / v0F.

The names are written here from the sgm module structure (GLVControl's input_blocks and
middle_block, LightGLVUNet's project_modules, the ldm VAE encoder), independently of the
loader's mapping, so loading the file through the real loader checks that mapping. Like a full
conversion it also holds some of the SDXL base's own tensors, which the loader sets aside.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import torch

_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
           "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v",
                  "to_out.0": "proj_out"}
# a few of the SDXL base's tensors, as a full conversion repeats them
_BASE_TENSORS = {
    "model.diffusion_model.input_blocks.0.0.weight": (4, 4, 3, 3),
    "first_stage_model.encoder.conv_in.weight": (8, 3, 3, 3),
    "first_stage_model.decoder.conv_out.bias": (3,),
    "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight": (32,),
}


def build_tiny_supir(sdxl_folder: Path, dest: Path, seed: int = 11) -> Path:
    """The tiny SUPIR for the tiny SDXL in `sdxl_folder`, saved at `dest` (.safetensors)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from sfumato.core.diffusion.supir.control_adapter import ControlEncoder, build_connectors

    torch.manual_seed(seed)
    unet_config = UNet2DConditionModel.load_config(sdxl_folder / "unet")
    vae = AutoencoderKL.from_pretrained(sdxl_folder / "vae")
    control = ControlEncoder(UNet2DConditionModel.from_config(unet_config).config)
    connectors = build_connectors(UNet2DConditionModel.from_config(unet_config).config)
    encoder = copy.deepcopy(vae.encoder)
    for module in (control, connectors, encoder):
        for param in module.parameters():  # random, never zero: every connector acts
            param.data.normal_(0, 0.05)
    layers = unet_config["layers_per_block"]
    tensors: dict[str, torch.Tensor] = {}
    for name, value in control.state_dict().items():
        tensors["model.control_model." + control_name(name, layers)] = value
    for name, value in connectors.state_dict().items():
        tensors["model.diffusion_model.project_modules." + name] = value
    for name, value in encoder.state_dict().items():
        if ".attentions.0.to_" in name and name.endswith("weight"):
            value = value[:, :, None, None]  # the ldm VAE's attention is 1x1 convolutions
        tensors["first_stage_model.denoise_encoder." + _vae_name(name)] = value
    for name, value in vae.quant_conv.state_dict().items():
        tensors["first_stage_model.quant_conv." + name] = value
    for name, shape in _BASE_TENSORS.items():
        tensors[name] = torch.randn(shape)
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(dest))
    return dest


def control_name(name: str, layers: int) -> str:
    """Our ControlEncoder's parameter `name` as GLVControl's checkpoint names it."""
    fixed = {"conv_in": "input_blocks.0.0", "hint_conv": "input_hint_block.0",
             "time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2"}
    module, _, leaf = name.rpartition(".")
    if module in fixed:
        return f"{fixed[module]}.{leaf}"
    match = re.match(r"down_blocks\.(\d+)\.(resnets|attentions|downsamplers)\.(\d+)\.(.*)", name)
    if match:
        level, part, index, rest = int(match[1]), match[2], int(match[3]), match[4]
        first = 1 + level * (layers + 1)  # input block of the level's first resnet
        if part == "downsamplers":
            return f"input_blocks.{first + layers}.0.op.{rest.removeprefix('conv.')}"
        if part == "attentions":
            return f"input_blocks.{first + index}.1.{rest}"
        return f"input_blocks.{first + index}.0.{_swap(rest, _RESNET)}"
    match = re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", name)
    if match:
        if match[1] == "attentions":
            return f"middle_block.1.{match[3]}"
        return f"middle_block.{2 * int(match[2])}.{_swap(match[3], _RESNET)}"
    raise ValueError(f"no sgm name for {name}")


def _vae_name(name: str) -> str:
    match = re.match(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", name)
    if match:
        return f"down.{match[1]}.block.{match[2]}." + _swap(match[3], {"conv_shortcut":
                                                                         "nin_shortcut"})
    match = re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.(.*)", name)
    if match:
        return f"down.{match[1]}.downsample.{match[2]}"
    match = re.match(r"mid_block\.resnets\.(\d+)\.(.*)", name)
    if match:
        return f"mid.block_{int(match[1]) + 1}.{match[2]}"
    if name.startswith("mid_block.attentions.0."):
        return "mid.attn_1." + _swap(name[len("mid_block.attentions.0."):], _VAE_ATTENTION)
    if name.startswith("conv_norm_out."):
        return "norm_out." + name[len("conv_norm_out."):]
    return name


def _swap(rest: str, table: dict[str, str]) -> str:
    for ours, theirs in table.items():
        if rest.startswith(ours + "."):
            return theirs + rest[len(ours):]
    return rest


def tiny_supir_keys(path: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return list(handle.keys())


