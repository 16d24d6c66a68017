"""SUPIR's control adapter: an encoder that reads the low-quality picture's latent beside the
noisy one, and the connectors that blend its features into the SDXL UNet's decoder.

The encoder is a trainable copy of SDXL's encoder half (diffusers' own down and mid blocks,
built from the base UNet's config) whose first features get the picture's latent through a
zero-initialised conv. The connectors are of two kinds, one per point where the UNet's decoder
takes a skip connection, plus the middle:
- `ZeroSFT`: spatial feature transform. The skip gets the control feature added, is joined to
  the decoder's hidden state, normalised, then scaled and shifted by maps predicted from the
  control feature; `scale` fades between that and the plain join.
- `ZeroCrossAttn`: before each upsampler, the hidden state attends to the control feature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

SFT_HIDDEN = 128  # channels of the shared conv that predicts the scale and shift maps
HEAD_CHANNELS = 64  # ZeroCrossAttn's head width (its heads: channels // 64)


class ControlEncoder(nn.Module):
    """GLVControl: features of (noisy latent + hint from the picture's latent) after conv_in,
    every down block layer and the mid block, as the SDXL UNet's skips are laid out."""

    def __init__(self, unet_config: Any) -> None:
        super().__init__()
        from diffusers import UNet2DConditionModel

        whole = UNet2DConditionModel.from_config(unet_config)  # its encoder half is ours
        self.conv_in = whole.conv_in
        self.time_proj = whole.time_proj
        self.time_embedding = whole.time_embedding
        self.add_time_proj = whole.add_time_proj
        self.add_embedding = whole.add_embedding
        self.down_blocks = whole.down_blocks
        self.mid_block = whole.mid_block
        channels = whole.config.block_out_channels[0]
        self.hint_conv = nn.Conv2d(whole.config.in_channels, channels, 3, padding=1)
        del whole

    def forward(self, hint: torch.Tensor, sample: torch.Tensor, timesteps: torch.Tensor,
                context: torch.Tensor, text_embeds: torch.Tensor, time_ids: torch.Tensor
                ) -> list[torch.Tensor]:
        dtype = self.conv_in.weight.dtype
        emb = time_embedding(self, timesteps, text_embeds, time_ids, dtype)
        h = self.conv_in(sample.to(dtype)) + self.hint_conv(hint.to(dtype))
        features = [h]
        for block in self.down_blocks:
            if getattr(block, "has_cross_attention", False):
                h, skips = block(h, temb=emb, encoder_hidden_states=context)
            else:
                h, skips = block(h, temb=emb)
            features.extend(skips)
        features.append(self.mid_block(h, emb, encoder_hidden_states=context))
        return features


def time_embedding(model: Any, timesteps: torch.Tensor, text_embeds: torch.Tensor,
                   time_ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """SDXL's embedding of the step, the pooled prompt and the size/crop ids, for a module
    with diffusers' time_proj, time_embedding, add_time_proj and add_embedding."""
    emb = model.time_embedding(model.time_proj(timesteps).to(dtype))
    ids = model.add_time_proj(time_ids.flatten()).reshape(time_ids.shape[0], -1)
    return emb + model.add_embedding(torch.cat([text_embeds, ids], dim=-1).to(dtype))


class ZeroSFT(nn.Module):
    def __init__(self, control_channels: int, skip_channels: int, hidden_channels: int,
                 groups: int) -> None:
        super().__init__()
        joined = skip_channels + hidden_channels
        self.param_free_norm = nn.GroupNorm(groups, joined, affine=True)
        self.mlp_shared = nn.Sequential(nn.Conv2d(control_channels, SFT_HIDDEN, 3, padding=1),
                                        nn.SiLU())
        self.zero_mul = nn.Conv2d(SFT_HIDDEN, joined, 3, padding=1)
        self.zero_add = nn.Conv2d(SFT_HIDDEN, joined, 3, padding=1)
        self.zero_conv = nn.Conv2d(control_channels, skip_channels, 1)

    def forward(self, control: torch.Tensor, skip: torch.Tensor,
                hidden: torch.Tensor | None = None, scale: float = 1.0) -> torch.Tensor:
        plain = skip if hidden is None else torch.cat([hidden, skip], dim=1)
        h = skip + self.zero_conv(control)
        if hidden is not None:
            h = torch.cat([hidden, h], dim=1)
        shared = self.mlp_shared(control)
        # the norm in float32, as SDXL's own group norms run
        normed = self.param_free_norm(h.float()).to(h.dtype)
        h = normed * (self.zero_mul(shared) + 1) + self.zero_add(shared)
        return h * scale + plain * (1 - scale)


class ZeroCrossAttn(nn.Module):
    def __init__(self, control_channels: int, channels: int, groups: int) -> None:
        super().__init__()
        from diffusers.models.attention_processor import Attention

        self.attn = Attention(channels, cross_attention_dim=control_channels,
                              heads=max(1, channels // HEAD_CHANNELS), dim_head=HEAD_CHANNELS)
        self.norm1 = nn.GroupNorm(groups, channels)
        self.norm2 = nn.GroupNorm(groups, control_channels)

    def forward(self, control: torch.Tensor, hidden: torch.Tensor, scale: float = 1.0
                ) -> torch.Tensor:
        b, c, height, width = hidden.shape
        x = self.norm1(hidden.float()).to(hidden.dtype).flatten(2).transpose(1, 2)
        ctx = self.norm2(control.float()).to(control.dtype).flatten(2).transpose(1, 2)
        attended = self.attn(x, encoder_hidden_states=ctx)
        return hidden + attended.transpose(1, 2).reshape(b, c, height, width) * scale


@dataclass(frozen=True)
class Connector:
    """One connector: SFT on skip `index` (hidden = the decoder's channels there; 0 for the
    middle), or cross-attention before an upsampler (`attention`)."""

    index: int  # which control feature (and skip) it reads
    hidden: int
    attention: bool = False


def connector_plan(unet_config: Any) -> tuple[list[int], list[Connector]]:
    """The skip channels of the UNet (= the control features, the middle last) and its
    connectors in checkpoint order, worked out from the base UNet's config the way SUPIR's
    XL-base mode lays them out: walking the decoder, the middle first, one SFT per skip and a
    cross-attention before each upsampler; the checkpoint lists them in reverse."""
    widths = list(unet_config.block_out_channels)
    layers = unet_config.layers_per_block
    skips = [widths[0]]
    for level, width in enumerate(widths):
        skips += [width] * layers
        if level < len(widths) - 1:
            skips.append(width)
    features = [*skips, widths[-1]]
    walk = [Connector(len(features) - 1, 0)]
    index, hidden = len(skips), widths[-1]
    for level, width in enumerate(reversed(widths)):
        for _ in range(layers + 1):
            index -= 1
            walk.append(Connector(index, hidden))
            hidden = width
        if level < len(widths) - 1:
            walk.append(Connector(index, hidden, attention=True))
    return features, walk[::-1]


def build_connectors(unet_config: Any) -> nn.ModuleList:
    features, plan = connector_plan(unet_config)
    groups = unet_config.norm_num_groups
    return nn.ModuleList(
        ZeroCrossAttn(features[c.index], c.hidden, groups) if c.attention
        else ZeroSFT(features[c.index], features[c.index], c.hidden, groups)
        for c in plan)
