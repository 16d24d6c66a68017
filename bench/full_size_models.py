"""Full-size diffusion pipelines with random weights, built from configs written here (the
published architectures' numbers), saved as diffusers folders in safetensors: they time like
the real models without downloading anything. Tokenizers are the character-level ones the
tests use (tokenization is not what is timed); the embedding tables keep the real vocabulary
sizes, so parameter counts and memory match.

Build once per machine; the folder is reused when its model_index.json is there.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CLIP_VOCAB = 49408
T5_VOCAB = 32128


def build_full_size(kind: str, dest: Path, device: str) -> Path:
    """The pipeline for `kind` ("sdxl-inpaint" or "flux-fill") in `dest`, built on `device`
    (a GPU initialises 12B parameters in seconds; a CPU takes many minutes)."""
    if (dest / "model_index.json").is_file():
        return dest
    import torch

    started = time.perf_counter()
    torch.manual_seed(0)
    builders = {"sdxl-inpaint": (sdxl_modules, _sdxl_inpaint),
                "flux-fill": (_flux_modules, _flux_fill)}
    modules, assemble = builders[kind]
    # initialised in bf16 where they are made: FLUX Fill's 17B parameters in fp32 would not
    # fit beside each other on an 80 GB GPU
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            parts = modules()
    finally:
        torch.set_default_dtype(default)
    pipe = assemble(parts)  # schedulers and tokenizers: made outside, as they expect
    dest.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(dest, safe_serialization=True, max_shard_size="10GB")
    print(f"built full-size {kind} in {time.perf_counter() - started:.0f} s: {dest}",
          flush=True)
    return dest


def _clip_l() -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(
        vocab_size=CLIP_VOCAB, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
        num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
        projection_dim=768, bos_token_id=0, eos_token_id=1, pad_token_id=2,
    ))


def _clip_big_g() -> Any:
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    return CLIPTextModelWithProjection(CLIPTextConfig(
        vocab_size=CLIP_VOCAB, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
        num_attention_heads=20, max_position_embeddings=77, hidden_act="gelu",
        projection_dim=1280, bos_token_id=0, eos_token_id=1, pad_token_id=2,
    ))


def _vae(latent_channels: int, flux: bool) -> Any:
    from diffusers import AutoencoderKL

    extra: dict[str, Any] = {"scaling_factor": 0.13025, "force_upcast": True}
    if flux:
        extra = {"scaling_factor": 0.3611, "shift_factor": 0.1159, "use_quant_conv": False,
                 "use_post_quant_conv": False, "force_upcast": True}
    return AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512),
        layers_per_block=2, latent_channels=latent_channels, norm_num_groups=32,
        sample_size=1024, **extra,
    )


def sdxl_modules(in_channels: int = 9) -> dict[str, Any]:
    """SDXL's published modules with random weights: 9 UNet input channels for inpaint, 4 for
    the base model (what SUPIR restores with)."""
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(
        sample_size=128, in_channels=in_channels, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(320, 640, 1280), layers_per_block=2,
        attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
        transformer_layers_per_block=(1, 2, 10), use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=2816, norm_num_groups=32,
    )
    return {"vae": _vae(4, flux=False), "text_encoder": _clip_l(),
            "text_encoder_2": _clip_big_g(), "unet": unet}


def _sdxl_inpaint(modules: dict[str, Any]) -> Any:
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLInpaintPipeline

    from tests.support.tiny_models import clip_tokenizer

    return StableDiffusionXLInpaintPipeline(
        **modules, tokenizer=clip_tokenizer(), tokenizer_2=clip_tokenizer(),
        scheduler=EulerDiscreteScheduler(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
            timestep_spacing="leading", steps_offset=1,
        ),
    )


def _flux_modules() -> dict[str, Any]:
    from diffusers import FluxTransformer2DModel
    from transformers import T5Config, T5EncoderModel

    t5 = T5EncoderModel(T5Config(
        vocab_size=T5_VOCAB, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
        relative_attention_num_buckets=32, feed_forward_proj="gated-gelu",
        decoder_start_token_id=0,
    ))
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=384, out_channels=64, num_layers=19, num_single_layers=38,
        attention_head_dim=128, num_attention_heads=24, joint_attention_dim=4096,
        pooled_projection_dim=768, guidance_embeds=True, axes_dims_rope=(16, 56, 56),
    )
    return {"vae": _vae(16, flux=True), "text_encoder": _clip_l(), "text_encoder_2": t5,
            "transformer": transformer}


def _flux_fill(modules: dict[str, Any]) -> Any:
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxFillPipeline

    from tests.support.tiny_models import clip_tokenizer, t5_tokenizer

    return FluxFillPipeline(
        **modules, tokenizer=clip_tokenizer(), tokenizer_2=t5_tokenizer(),
        scheduler=FlowMatchEulerDiscreteScheduler(
            shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
            base_image_seq_len=256, max_image_seq_len=4096,
        ),
    )
