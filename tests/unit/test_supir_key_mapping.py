"""SUPIR's sgm key names as our modules name them, checked against names the published
SDXL-sized checkpoints hold, and the connector layout against SUPIR's XL-base lists."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sfumato.core.diffusion.supir.key_mapping import control_key, sort_keys, vae_encoder_key

pytestmark = pytest.mark.unit

SDXL = SimpleNamespace(block_out_channels=(320, 640, 1280), layers_per_block=2,
                       norm_num_groups=32)


@pytest.mark.parametrize(("theirs", "ours"), [
    ("input_blocks.0.0.weight", "conv_in.weight"),
    ("input_hint_block.0.bias", "hint_conv.bias"),
    ("time_embed.2.weight", "time_embedding.linear_2.weight"),
    ("label_emb.0.0.weight", "add_embedding.linear_1.weight"),
    ("input_blocks.1.0.in_layers.0.weight", "down_blocks.0.resnets.0.norm1.weight"),
    ("input_blocks.3.0.op.weight", "down_blocks.0.downsamplers.0.conv.weight"),
    ("input_blocks.4.0.skip_connection.bias", "down_blocks.1.resnets.0.conv_shortcut.bias"),
    ("input_blocks.5.1.transformer_blocks.1.attn2.to_k.weight",
     "down_blocks.1.attentions.1.transformer_blocks.1.attn2.to_k.weight"),
    ("input_blocks.8.0.emb_layers.1.weight", "down_blocks.2.resnets.1.time_emb_proj.weight"),
    ("middle_block.1.proj_in.weight", "mid_block.attentions.0.proj_in.weight"),
    ("middle_block.2.out_layers.3.bias", "mid_block.resnets.1.conv2.bias"),
])
def test_control_model_names(theirs: str, ours: str) -> None:
    assert control_key(theirs, 2) == ours


@pytest.mark.parametrize(("theirs", "ours"), [
    ("down.1.block.0.nin_shortcut.weight", "down_blocks.1.resnets.0.conv_shortcut.weight"),
    ("down.2.downsample.conv.bias", "down_blocks.2.downsamplers.0.conv.bias"),
    ("mid.block_2.conv1.weight", "mid_block.resnets.1.conv1.weight"),
    ("mid.attn_1.proj_out.weight", "mid_block.attentions.0.to_out.0.weight"),
    ("mid.attn_1.norm.bias", "mid_block.attentions.0.group_norm.bias"),
    ("norm_out.weight", "conv_norm_out.weight"),
])
def test_degradation_robust_encoder_names(theirs: str, ours: str) -> None:
    assert vae_encoder_key(theirs) == ours


def test_keys_are_sorted_into_supir_parts_and_the_base() -> None:
    keys = sort_keys(["model.control_model.input_blocks.0.0.weight",
                      "model.diffusion_model.project_modules.11.zero_mul.weight",
                      "first_stage_model.denoise_encoder.conv_in.weight",
                      "first_stage_model.quant_conv.weight",
                      "model.diffusion_model.output_blocks.2.1.conv.weight",
                      "conditioner.embedders.1.model.ln_final.weight", "lora.x"], 2)
    assert keys.control == {"conv_in.weight": "model.control_model.input_blocks.0.0.weight"}
    assert list(keys.connectors) == ["connectors.11.zero_mul.weight"]
    assert set(keys.encoder) == {"encoder.conv_in.weight", "quant_conv.weight"}
    assert len(keys.base) == 2 and keys.unknown == ["lora.x"]


def test_connectors_follow_supirs_xl_base_layout() -> None:
    from sfumato.core.diffusion.supir.control_adapter import connector_plan

    # LightGLVUNet(mode="XL-base", project_channel_scale=2)'s published lists
    cond_output = [320] * 4 + [640] * 3 + [1280] * 3
    concat = [320] * 2 + [640] * 3 + [1280] * 4 + [0]
    features, plan = connector_plan(SDXL)
    assert features == cond_output
    assert [i for i, c in enumerate(plan) if c.attention] == [3, 7]
    sft = [c for c in plan if not c.attention]
    assert [c.index for c in sft] == list(range(10))
    assert [c.hidden for c in sft] == concat
    assert [(features[c.index], c.hidden) for c in plan if c.attention] == [(320, 640),
                                                                           (640, 1280)]

