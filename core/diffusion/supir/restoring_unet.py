"""The SDXL base UNet run with SUPIR's connectors in its decoder (LightGLVUNet's forward).

The encoder half and the middle run as the base model's own; every skip connection the
decoder takes is first passed through its ZeroSFT connector with the control feature of the
same place, and the hidden state attends to the control feature before each upsampler.
"""

from __future__ import annotations

from typing import Any

import torch
from sfumato.core.diffusion.supir.control_adapter import time_embedding
from torch import nn


def restoring_unet(unet: Any, connectors: nn.ModuleList, sample: torch.Tensor,
                   timesteps: torch.Tensor, context: torch.Tensor, text_embeds: torch.Tensor,
                   time_ids: torch.Tensor, control: list[torch.Tensor], scale: float
                   ) -> torch.Tensor:
    """The noise the base `unet` (diffusers' SDXL UNet2DConditionModel) predicts for
    `sample`, steered by the control encoder's `control` features through `connectors`."""
    dtype = unet.conv_in.weight.dtype
    emb = time_embedding(unet, timesteps, text_embeds, time_ids, dtype)
    h = unet.conv_in(sample.to(dtype))
    skips = [h]
    for block in unet.down_blocks:
        if getattr(block, "has_cross_attention", False):
            h, more = block(h, temb=emb, encoder_hidden_states=context)
        else:
            h, more = block(h, temb=emb)
        skips.extend(more)
    h = unet.mid_block(h, emb, encoder_hidden_states=context)

    walk = iter(reversed(connectors))  # the checkpoint lists them from the top down
    feature = len(control) - 1
    h = next(walk)(control[feature], h, None, scale)
    for block in unet.up_blocks:
        attentions = getattr(block, "attentions", None)
        for index, resnet in enumerate(block.resnets):
            feature -= 1
            h = next(walk)(control[feature], skips.pop(), h, scale)
            h = resnet(h, emb)
            if attentions is not None:
                h = attentions[index](h, encoder_hidden_states=context, return_dict=False)[0]
        if block.upsamplers:
            h = next(walk)(control[feature], h, scale)
            size = skips[-1].shape[2:] if skips else None
            for upsampler in block.upsamplers:
                h = upsampler(h, size)
    h = unet.conv_norm_out(h)
    return unet.conv_out(unet.conv_act(h))
