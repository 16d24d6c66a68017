"""Write a diffusers SD 1.5 folder back out as one original-layout (LDM / A1111 / ComfyUI)
.safetensors checkpoint, so tests can load it through diffusers' single-file loader.

The key names are the inverse of diffusers' own single-file conversion
(diffusers.loaders.single_file_utils): the UNet under `model.diffusion_model.`, the VAE under
`first_stage_model.`, the CLIP text encoder under `cond_stage_model.transformer.`. Each written
checkpoint is converted forward again with diffusers' converters and must give back exactly the
folder's weights, so a wrong name here fails loudly at build time, not as a confusing test result.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."

# diffusers name -> LDM name inside a UNet resnet block
_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "time_emb_proj": "emb_layers.1",
    "conv_shortcut": "skip_connection",
}
_UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
_VAE_TOP = {
    "encoder.conv_norm_out": "encoder.norm_out",
    "decoder.conv_norm_out": "decoder.norm_out",
}
# diffusers name -> LDM name inside the VAE's mid-block attention (LDM uses 1x1 convs)
_VAE_ATTENTION = {
    "group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out",
}


def save_original_layout_checkpoint(diffusers_folder: Path, dest: Path) -> Path:
    """Write the UNet, VAE and text encoder of an SD 1.5 (plain or inpaint) diffusers folder
    as one original-layout .safetensors file at `dest`; returns `dest`."""
    folder = Path(diffusers_folder)
    unet = _weights(folder / "unet")
    vae = _weights(folder / "vae")
    text = _weights(folder / "text_encoder")
    unet_config = _config(folder / "unet")

    checkpoint: dict[str, torch.Tensor] = {}
    layers = int(unet_config["layers_per_block"])
    up_with_attention = {
        int(k.split(".")[1]) for k in unet if re.match(r"up_blocks\.\d+\.attentions\.", k)
    }
    for key, tensor in unet.items():
        checkpoint[UNET_PREFIX + _unet_key(key, layers, up_with_attention)] = tensor
    ups = len(_config(folder / "vae")["up_block_types"])
    for key, tensor in vae.items():
        ldm = _vae_key(key, ups)
        if ".mid.attn_1." in ldm and ldm.endswith(".weight") and tensor.ndim == 2:
            tensor = tensor[:, :, None, None]  # LDM's attention projections are 1x1 convs
        checkpoint[VAE_PREFIX + ldm] = tensor
    for key, tensor in text.items():
        checkpoint[CLIP_PREFIX + "text_model." + key.removeprefix("text_model.")] = tensor

    checkpoint = {k: v.contiguous().clone() for k, v in checkpoint.items()}
    _check_round_trip(checkpoint, folder, unet, vae, text)
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_file(checkpoint, str(dest))
    return dest


def _unet_key(key: str, layers: int, up_with_attention: set[int]) -> str:
    per_down = layers + 1  # resnets (with attentions) plus the downsampler slot
    per_up = layers + 1  # up blocks have one more resnet than down blocks
    for name, ldm in _UNET_TOP.items():
        if key.startswith(name + "."):
            return ldm + key[len(name):]
    if m := re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
        block, part, layer, rest = int(m[1]), m[2], int(m[3]), m[4]
        index = 1 + block * per_down + layer
        return f"input_blocks.{index}.{_unet_part(part, rest)}"
    if m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        index = 1 + int(m[1]) * per_down + layers
        return f"input_blocks.{index}.0.op.{m[2]}"
    if m := re.fullmatch(r"mid_block\.(resnets|attentions)\.(\d+)\.(.+)", key):
        index = 2 * int(m[2]) if m[1] == "resnets" else 1  # resnet, attention, resnet
        return f"middle_block.{index}.{_unet_part(m[1], m[3])[2:]}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
        block, part, layer, rest = int(m[1]), m[2], int(m[3]), m[4]
        return f"output_blocks.{block * per_up + layer}.{_unet_part(part, rest)}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
        block = int(m[1])
        slot = 2 if block in up_with_attention else 1  # after the attention when there is one
        return f"output_blocks.{block * per_up + layers}.{slot}.conv.{m[2]}"
    raise ValueError(f"no original-layout name for UNet weight {key!r}")


def _unet_part(part: str, rest: str) -> str:
    """`0.<resnet names>` or `1.<attention names>` within an LDM block."""
    if part == "attentions":
        return f"1.{rest}"
    head, _, tail = rest.partition(".")
    return f"0.{_UNET_RESNET.get(head, head)}.{tail}"


def _vae_key(key: str, ups: int) -> str:
    for name, ldm in _VAE_TOP.items():
        if key.startswith(name + "."):
            return ldm + key[len(name):]
    if m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        return f"encoder.down.{m[1]}.block.{m[2]}.{_vae_resnet(m[3])}"
    if m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        return f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
    if m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        return f"decoder.up.{ups - 1 - int(m[1])}.block.{m[2]}.{_vae_resnet(m[3])}"  # LDM counts up
    if m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
        return f"decoder.up.{ups - 1 - int(m[1])}.upsample.conv.{m[2]}"
    if m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
        return f"{m[1]}.mid.block_{int(m[2]) + 1}.{_vae_resnet(m[3])}"
    if m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)", key):
        if m[2] in _VAE_ATTENTION:
            return f"{m[1]}.mid.attn_1.{_VAE_ATTENTION[m[2]]}.{m[3]}"
    if re.fullmatch(r"(encoder|decoder)\.conv_(in|out)\.(weight|bias)", key) or re.fullmatch(
        r"(post_)?quant_conv\.(weight|bias)", key
    ):
        return key
    raise ValueError(f"no original-layout name for VAE weight {key!r}")


def _vae_resnet(rest: str) -> str:
    return rest.replace("conv_shortcut.", "nin_shortcut.")


def _check_round_trip(checkpoint: dict[str, torch.Tensor], folder: Path,
                      unet: dict[str, torch.Tensor], vae: dict[str, torch.Tensor],
                      text: dict[str, torch.Tensor]) -> None:
    """diffusers' own converters must turn `checkpoint` back into exactly the folder's weights."""
    from diffusers.loaders.single_file_utils import (
        convert_ldm_clip_checkpoint,
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
    )

    converted = {
        "unet": convert_ldm_unet_checkpoint(dict(checkpoint), _config(folder / "unet")),
        "vae": convert_ldm_vae_checkpoint(dict(checkpoint), _config(folder / "vae")),
        "text_encoder": {
            k.removeprefix("text_model."): v
            for k, v in convert_ldm_clip_checkpoint(dict(checkpoint)).items()
        },
    }
    expected = {"unet": unet, "vae": vae,
                "text_encoder": {k.removeprefix("text_model."): v for k, v in text.items()}}
    for name, want in expected.items():
        got = converted[name]
        if set(got) != set(want):
            missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
            raise AssertionError(f"{name}: round trip lost {missing[:5]}, added {extra[:5]}")
        for key, tensor in want.items():
            if got[key] is None or not torch.equal(got[key], tensor):
                raise AssertionError(f"{name}: {key} changed in the round trip")


def _weights(part: Path) -> dict[str, torch.Tensor]:
    files = sorted(part.glob("*.safetensors"))
    if len(files) != 1:
        raise ValueError(f"{part} should hold exactly one .safetensors file, not {len(files)}")
    return load_file(str(files[0]))


def _config(part: Path) -> dict[str, Any]:
    return json.loads((part / "config.json").read_text())


CONTROLNET_PREFIX = "control_model."
_CONTROLNET_TOP = {
    "add_embedding.linear_1": "label_emb.0.0",  # SDXL's text-time embedding
    "add_embedding.linear_2": "label_emb.0.2",
    "controlnet_cond_embedding.conv_in": "input_hint_block.0",
    "controlnet_mid_block": "middle_block_out.0",
}


def save_original_layout_controlnet(diffusers_folder: Path, dest: Path) -> Path:
    """Write a diffusers ControlNet folder as the single original-layout .safetensors file
    ComfyUI and A1111 keep (`control_model.` + the UNet encoder's LDM names, `input_hint_block`,
    `zero_convs`, `middle_block_out`); checked against diffusers' converter like the above."""
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    weights = _weights(Path(diffusers_folder))
    config = _config(Path(diffusers_folder))
    layers = int(config["layers_per_block"])
    hint_blocks = len({k.split(".")[2] for k in weights
                       if k.startswith("controlnet_cond_embedding.blocks.")})
    checkpoint: dict[str, torch.Tensor] = {}
    for key, tensor in weights.items():
        checkpoint[CONTROLNET_PREFIX + _controlnet_key(key, layers, hint_blocks)] = tensor
    checkpoint = {k: v.contiguous().clone() for k, v in checkpoint.items()}
    converted = convert_controlnet_checkpoint(dict(checkpoint), config)
    # diffusers 0.42's converter drops SDXL's `label_emb` (add_embedding); sfumato's loader
    # reads those two layers itself, so they are left out of the comparison
    expected = {k: v for k, v in weights.items() if not k.startswith("add_embedding.")}
    if set(converted) != set(expected) or any(
            converted[k] is None or not torch.equal(converted[k], v) for k, v in expected.items()):
        raise AssertionError("the ControlNet did not survive diffusers' conversion unchanged")
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_file(checkpoint, str(dest))
    return dest


def _controlnet_key(key: str, layers: int, hint_blocks: int) -> str:
    for name, ldm in _CONTROLNET_TOP.items():
        if key.startswith(name + "."):
            return ldm + key[len(name):]
    if m := re.fullmatch(r"controlnet_cond_embedding\.blocks\.(\d+)\.(.+)", key):
        return f"input_hint_block.{2 * (int(m[1]) + 1)}.{m[2]}"  # SiLUs sit between the convs
    if m := re.fullmatch(r"controlnet_cond_embedding\.conv_out\.(.+)", key):
        return f"input_hint_block.{2 * (hint_blocks + 1)}.{m[1]}"
    if m := re.fullmatch(r"controlnet_down_blocks\.(\d+)\.(.+)", key):
        return f"zero_convs.{m[1]}.0.{m[2]}"
    return _unet_key(key, layers, set())
