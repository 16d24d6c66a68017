"""Where each tensor of a SUPIR checkpoint (the sgm layout of the SUPIR-v0Q / v0F releases,
converted to .safetensors) goes among our modules.

A SUPIR file holds three parts of its own, each renamed here to the module that runs it:
- `model.control_model.*` (GLVControl, a copy of SDXL's encoder half plus a hint conv) ->
  `ControlEncoder`, named as diffusers names a UNet's encoder half;
- `model.diffusion_model.project_modules.*` (the ZeroSFT / ZeroCrossAttn connectors) ->
  `connectors.N` (same inner names);
- `first_stage_model.denoise_encoder.*` and `first_stage_model.quant_conv.*` (the
  degradation-robust encoder) -> an `AutoencoderKL`'s `encoder.*` and `quant_conv.*`.
Everything else in a full conversion (the SDXL UNet, VAE and text encoders) is the SDXL base,
which comes from the base model the artist registered; those keys are set aside, not loaded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

CONTROL = "model.control_model."
CONNECTORS = "model.diffusion_model.project_modules."
DENOISE_ENCODER = "first_stage_model.denoise_encoder."
QUANT_CONV = "first_stage_model.quant_conv."
# the SDXL base's own parts, which a full SUPIR conversion repeats (and SUPIR's stage-1 encoder)
BASE_PREFIXES = ("model.diffusion_model.", "first_stage_model.", "conditioner.", "denoiser.",
                 "model_ema.", "alphas_cumprod", "betas", "sigmas")

_RESNET = (("in_layers.0.", "norm1."), ("in_layers.2.", "conv1."),
           ("emb_layers.1.", "time_emb_proj."), ("out_layers.0.", "norm2."),
           ("out_layers.3.", "conv2."), ("skip_connection.", "conv_shortcut."))
_VAE_RESNET = (("nin_shortcut.", "conv_shortcut."),)
_VAE_ATTENTION = (("norm.", "group_norm."), ("q.", "to_q."), ("k.", "to_k."), ("v.", "to_v."),
                  ("proj_out.", "to_out.0."))


@dataclass
class SupirKeys:
    """A checkpoint's keys sorted by destination: ours -> theirs for each of SUPIR's parts,
    the base's keys set aside, and any key that belongs nowhere."""

    control: dict[str, str] = field(default_factory=dict)
    connectors: dict[str, str] = field(default_factory=dict)
    encoder: dict[str, str] = field(default_factory=dict)  # into an AutoencoderKL
    base: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


def is_supir(keys: Iterable[str]) -> bool:
    """A SUPIR checkpoint: it has the control model and the connectors."""
    found = set()
    for key in keys:
        if key.startswith(CONTROL):
            found.add(CONTROL)
        elif key.startswith(CONNECTORS):
            found.add(CONNECTORS)
    return len(found) == 2


def sort_keys(keys: Iterable[str], layers_per_block: int) -> SupirKeys:
    """Every key of a SUPIR checkpoint, sorted (the control model's input blocks are
    numbered through `layers_per_block` resnets and one downsampler per level)."""
    sorted_keys = SupirKeys()
    for key in keys:
        if key.startswith(CONTROL):
            sorted_keys.control[control_key(key[len(CONTROL):], layers_per_block)] = key
        elif key.startswith(CONNECTORS):
            sorted_keys.connectors["connectors." + key[len(CONNECTORS):]] = key
        elif key.startswith(DENOISE_ENCODER):
            sorted_keys.encoder["encoder." + vae_encoder_key(key[len(DENOISE_ENCODER):])] = key
        elif key.startswith(QUANT_CONV):
            sorted_keys.encoder["quant_conv." + key[len(QUANT_CONV):]] = key
        elif key.startswith(BASE_PREFIXES):
            sorted_keys.base.append(key)
        else:
            sorted_keys.unknown.append(key)
    return sorted_keys


def control_key(key: str, layers_per_block: int) -> str:
    """A GLVControl key (without its prefix) as our ControlEncoder names it."""
    for theirs, ours in (("time_embed.0.", "time_embedding.linear_1."),
                         ("time_embed.2.", "time_embedding.linear_2."),
                         ("label_emb.0.0.", "add_embedding.linear_1."),
                         ("label_emb.0.2.", "add_embedding.linear_2."),
                         ("input_blocks.0.0.", "conv_in."),
                         ("input_hint_block.0.", "hint_conv.")):
        if key.startswith(theirs):
            return ours + key[len(theirs):]
    match = re.match(r"input_blocks\.(\d+)\.(\d+)\.(.*)", key)
    if match:
        block, layer, rest = int(match[1]), int(match[2]), match[3]
        level, index = divmod(block - 1, layers_per_block + 1)
        where = f"down_blocks.{level}."
        if index == layers_per_block:  # the level's downsampler
            return where + "downsamplers.0.conv." + rest.removeprefix("op.")
        if layer == 0:
            return where + f"resnets.{index}." + _renamed(rest, _RESNET)
        return where + f"attentions.{index}." + rest  # a SpatialTransformer: same names
    match = re.match(r"middle_block\.(\d+)\.(.*)", key)
    if match:
        layer, rest = int(match[1]), match[2]
        if layer == 1:
            return "mid_block.attentions.0." + rest
        return f"mid_block.resnets.{layer // 2}." + _renamed(rest, _RESNET)
    return key  # unknown: left as it is, so loading reports it


def vae_encoder_key(key: str) -> str:
    """An ldm VAE encoder key (without `encoder.`) as diffusers' Encoder names it."""
    match = re.match(r"down\.(\d+)\.block\.(\d+)\.(.*)", key)
    if match:
        return f"down_blocks.{match[1]}.resnets.{match[2]}." + _renamed(match[3], _VAE_RESNET)
    match = re.match(r"down\.(\d+)\.downsample\.(.*)", key)
    if match:
        return f"down_blocks.{match[1]}.downsamplers.0.{match[2]}"
    match = re.match(r"mid\.block_(\d)\.(.*)", key)
    if match:
        return f"mid_block.resnets.{int(match[1]) - 1}." + _renamed(match[2], _VAE_RESNET)
    if key.startswith("mid.attn_1."):
        return "mid_block.attentions.0." + _renamed(key[len("mid.attn_1."):], _VAE_ATTENTION)
    if key.startswith("norm_out."):
        return "conv_norm_out." + key[len("norm_out."):]
    return key  # conv_in, conv_out


def is_conv_attention(ours: str) -> bool:
    """The VAE's mid attention: 1x1 convolutions in the ldm layout, linear layers in ours."""
    return ".mid_block.attentions.0.to_" in ours and ours.endswith(".weight")


def _renamed(rest: str, table: tuple[tuple[str, str], ...]) -> str:
    for theirs, ours in table:
        if rest.startswith(theirs):
            return ours + rest[len(theirs):]
    return rest
