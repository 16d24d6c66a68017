"""Tiny random-weight diffusers pipelines, built from configs and saved in the real on-disk layout.

Nothing is downloaded: the tokenizers are built from hand-written vocabularies. The models keep
the real geometry (a VAE that downsamples 8x, SDXL's text-time conditioning, FLUX's packed
16-channel latents and fill conditioning) with tiny widths, and attention only at the lowest
UNet level, so one 256x256 call with 2 steps runs in well under a second on two CPU cores.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import torch

KINDS = ("sdxl-inpaint", "sdxl", "sd15-inpaint", "sd15", "flux-fill", "flux",
         "instruct-pix2pix", "sdxl-instruct-pix2pix", "flux-kontext",  # these four: edit
         "flux2-klein", "qwen-image-edit", "qwen-image-edit-plus")

TINY_RESOLUTION = 256  # UNet sample_size 32 x VAE factor 8
_CLIP_WIDTH = 32
_T5_WIDTH = 32
_CHARS = string.ascii_lowercase + string.digits + ".,!?'-:;()"


def build_tiny_model(kind: str, dest: Path) -> Path:
    """Build the tiny pipeline for `kind` and save it (safetensors) as a diffusers folder."""
    builders = {
        "sdxl-inpaint": lambda: _sdxl(in_channels=9, inpaint=True),
        "sdxl": lambda: _sdxl(in_channels=4, inpaint=False),
        "sd15-inpaint": lambda: _sd15(in_channels=9, inpaint=True),
        "sd15": lambda: _sd15(in_channels=4, inpaint=False),
        "flux-fill": lambda: _flux(fill=True),
        "flux": lambda: _flux(fill=False),
        # edit by instruction: InstructPix2Pix's UNet reads the picture's latents beside the
        # noise (8 channels); Kontext is FLUX's transformer with the picture as more tokens
        "instruct-pix2pix": lambda: _sd15(in_channels=8, inpaint=False, edit=True),
        "sdxl-instruct-pix2pix": lambda: _sdxl(in_channels=8, inpaint=False, edit=True),
        "flux-kontext": lambda: _flux(fill=False, kontext=True),
        "flux2-klein": _flux2_klein,
        "qwen-image-edit": lambda: _qwen_image_edit(inpaint=False),
        "qwen-image-edit-plus": lambda: _qwen_image_edit(inpaint=False, plus=True),
    }
    if kind not in builders:
        raise ValueError(f"no tiny model for kind {kind!r}; known: {', '.join(KINDS)}")
    torch.manual_seed(0)  # same weights every build, so test expectations are stable
    pipe = builders[kind]()
    dest.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(dest, safe_serialization=True)
    if kind.startswith("qwen-image-edit"):
        _qwen_processor_layout(pipe, dest)
    return dest


# --- tokenizers ---------------------------------------------------------------------------


def clip_tokenizer() -> Any:
    """A character-level CLIP BPE tokenizer: every character with and without `</w>`."""
    from transformers import CLIPTokenizer

    vocab: dict[str, int] = {}
    for token in ("<|startoftext|>", "<|endoftext|>", "!"):
        vocab[token] = len(vocab)
    for char in _CHARS:
        for token in (char, char + "</w>"):
            vocab.setdefault(token, len(vocab))
    return CLIPTokenizer(
        vocab=vocab,
        merges=[],
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="!",
        model_max_length=77,
    )


def t5_tokenizer() -> Any:
    """A character-level unigram T5 tokenizer (pad, eos, unk first, as T5 numbers them)."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(char, -3.0) for char in _CHARS]
    pieces += [("\u2581" + char, -2.5) for char in string.ascii_lowercase]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=512)


def _clip_config(vocab_size: int) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=_CLIP_WIDTH,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=_CLIP_WIDTH,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
    )


# --- shared parts --------------------------------------------------------------------------


def _vae(latent_channels: int, flux: bool) -> Any:
    from diffusers import AutoencoderKL

    extra: dict[str, Any] = {}
    if flux:
        extra = {"shift_factor": 0.1159, "scaling_factor": 0.3611}
        extra |= {"use_quant_conv": False, "use_post_quant_conv": False}
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,  # three downsamples: 8x, as real ones
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=4,
        sample_size=TINY_RESOLUTION,
        **extra,
    )


def _unet(in_channels: int, cross_attention_dim: int, sdxl: bool) -> Any:
    from diffusers import UNet2DConditionModel

    extra: dict[str, Any] = {}
    if sdxl:
        extra = {
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": 8,
            # six time ids (sizes and crop) of 8 each, plus text_encoder_2's pooled projection
            "projection_class_embeddings_input_dim": 6 * 8 + _CLIP_WIDTH,
            "use_linear_projection": True,
        }
    return UNet2DConditionModel(
        sample_size=TINY_RESOLUTION // 8,
        in_channels=in_channels,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),  # attention only lowest
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        attention_head_dim=(2, 4),
        cross_attention_dim=cross_attention_dim,
        **extra,
    )


# --- pipelines -----------------------------------------------------------------------------


def _sdxl(in_channels: int, inpaint: bool, edit: bool = False) -> Any:
    from diffusers import (
        EulerDiscreteScheduler,
        StableDiffusionXLInpaintPipeline,
        StableDiffusionXLInstructPix2PixPipeline,
        StableDiffusionXLPipeline,
    )
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = clip_tokenizer()
    config = _clip_config(len(tokenizer))
    components = {
        "vae": _vae(4, flux=False),
        "text_encoder": CLIPTextModel(config),
        "text_encoder_2": CLIPTextModelWithProjection(config),
        "tokenizer": tokenizer,
        "tokenizer_2": clip_tokenizer(),
        "unet": _unet(in_channels, 2 * _CLIP_WIDTH, sdxl=True),
        "scheduler": EulerDiscreteScheduler(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
            timestep_spacing="leading", steps_offset=1,
        ),
    }
    if edit:
        return StableDiffusionXLInstructPix2PixPipeline(**components, add_watermarker=False)
    cls = StableDiffusionXLInpaintPipeline if inpaint else StableDiffusionXLPipeline
    return cls(**components)


def _sd15(in_channels: int, inpaint: bool, edit: bool = False) -> Any:
    from diffusers import (
        DDIMScheduler,
        StableDiffusionInpaintPipeline,
        StableDiffusionInstructPix2PixPipeline,
        StableDiffusionPipeline,
    )
    from transformers import CLIPTextModel

    tokenizer = clip_tokenizer()
    components = {
        "vae": _vae(4, flux=False),
        "text_encoder": CLIPTextModel(_clip_config(len(tokenizer))),
        "tokenizer": tokenizer,
        "unet": _unet(in_channels, _CLIP_WIDTH, sdxl=False),
        "scheduler": DDIMScheduler(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
            clip_sample=False, set_alpha_to_one=False, steps_offset=1,
        ),
        "safety_checker": None,
        "feature_extractor": None,
        "requires_safety_checker": False,
    }
    if edit:
        return StableDiffusionInstructPix2PixPipeline(**components)
    cls = StableDiffusionInpaintPipeline if inpaint else StableDiffusionPipeline
    return cls(**components)


def _flux(fill: bool, kontext: bool = False) -> Any:
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        FluxFillPipeline,
        FluxKontextPipeline,
        FluxPipeline,
        FluxTransformer2DModel,
    )
    from transformers import CLIPTextModel, T5Config, T5EncoderModel

    latent_channels = 16
    packed = latent_channels * 4  # 2x2 patches of the 16-channel latent
    # fill conditioning: the packed masked-image latent plus the 8x8 mask per latent pixel, packed
    in_channels = packed + packed + 8 * 8 * 4 if fill else packed
    tokenizer = clip_tokenizer()
    tokenizer_2 = t5_tokenizer()
    t5 = T5Config(
        vocab_size=len(tokenizer_2), d_model=_T5_WIDTH, d_kv=8, d_ff=37, num_layers=2,
        num_heads=4, relative_attention_num_buckets=8, decoder_start_token_id=0,
    )
    components = {
        "scheduler": FlowMatchEulerDiscreteScheduler(
            shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
            base_image_seq_len=256, max_image_seq_len=4096,
        ),
        "vae": _vae(latent_channels, flux=True),
        "text_encoder": CLIPTextModel(_clip_config(len(tokenizer))),
        "tokenizer": tokenizer,
        "text_encoder_2": T5EncoderModel(t5),
        "tokenizer_2": tokenizer_2,
        "transformer": FluxTransformer2DModel(
            patch_size=1,
            in_channels=in_channels,
            out_channels=packed,
            num_layers=1,
            num_single_layers=1,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=_T5_WIDTH,
            pooled_projection_dim=_CLIP_WIDTH,
            guidance_embeds=True,
            axes_dims_rope=(4, 6, 6),
        ),
    }
    if kontext:
        return FluxKontextPipeline(**components)
    cls = FluxFillPipeline if fill else FluxPipeline
    return cls(**components)


def _flux2_klein() -> Any:
    """FLUX.2 Klein: a Qwen3 text encoder (28 layers, as the pipeline reads layers 9, 18 and
    27; a byte-level tokenizer with a chat template), FLUX.2's VAE (8x, 2x2 patches) and
    transformer; distilled, as Klein 4B is."""
    from diffusers import (
        AutoencoderKLFlux2,
        FlowMatchEulerDiscreteScheduler,
        Flux2KleinPipeline,
        Flux2Transformer2DModel,
    )
    from tokenizers import pre_tokenizers
    from transformers import Qwen2TokenizerFast, Qwen3Config, Qwen3ForCausalLM

    vocab = {"<|endoftext|>": 0}
    for char in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab.setdefault(char, len(vocab))
    tokenizer = Qwen2TokenizerFast(vocab=vocab, merges=[],
                                   additional_special_tokens=["<|im_start|>", "<|im_end|>"])
    tokenizer.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    text_encoder = Qwen3ForCausalLM(Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=16, num_hidden_layers=28,
        num_attention_heads=2, num_key_value_heads=2, head_dim=8,
        max_position_embeddings=1024))
    transformer = Flux2Transformer2DModel(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=1,
        attention_head_dim=16, num_attention_heads=2, joint_attention_dim=3 * 16,
        timestep_guidance_channels=256, axes_dims_rope=[4, 4, 4, 4], guidance_embeds=False)
    vae = AutoencoderKLFlux2(
        sample_size=TINY_RESOLUTION, in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 8, 8), layers_per_block=1, latent_channels=4,
        norm_num_groups=4, use_quant_conv=False, use_post_quant_conv=False)
    return Flux2KleinPipeline(scheduler=FlowMatchEulerDiscreteScheduler(),
                              text_encoder=text_encoder, tokenizer=tokenizer,
                              transformer=transformer, vae=vae, is_distilled=True)


_QWEN_SPECIALS = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|image_pad|>", "<|video_pad|>"]


def _qwen_image_edit(inpaint: bool, plus: bool = False) -> Any:
    """Qwen-Image-Edit: a Qwen2.5-VL text encoder that reads the picture (vision tower, 14 px
    patches merged 2x2; a byte-level tokenizer with Qwen's vision tokens), Qwen-Image's causal
    3D VAE (8x) and its transformer (2x2 patches). The processor is sfumato's picture-only
    one; the folder is re-written after saving in the layout Qwen's releases use."""
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImageEditInpaintPipeline,
        QwenImageEditPipeline,
        QwenImageEditPlusPipeline,
        QwenImageTransformer2DModel,
    )
    from sfumato.core.models.qwen_processor import _processor_class
    from tokenizers import pre_tokenizers
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2TokenizerFast,
    )
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    vocab = {"<|endoftext|>": 0}
    for char in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab.setdefault(char, len(vocab))
    tokenizer = Qwen2TokenizerFast(vocab=vocab, merges=[],
                                   additional_special_tokens=_QWEN_SPECIALS)
    # the picture read at 4 to 16 merged patches (the real one reads up to 12.8 MP)
    images = Qwen2VLImageProcessorPil(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16,
                                      patch_size=14, merge_size=2, temporal_patch_size=2)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in _QWEN_SPECIALS}
    text_encoder = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(
        text_config={"hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "num_key_value_heads": 2,
                     "vocab_size": len(tokenizer), "bos_token_id": 0, "eos_token_id": 0,
                     "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default",
                                      "type": "default"}},
        vision_config={"depth": 2, "hidden_size": 16, "intermediate_size": 16,
                       "num_heads": 2, "out_hidden_size": 16, "fullatt_block_indexes": [1],
                       "window_size": 56},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"], bos_token_id=0, eos_token_id=0))
    transformer = QwenImageTransformer2DModel(
        patch_size=2, in_channels=16, out_channels=4, num_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=16, guidance_embeds=False,
        axes_dims_rope=(8, 4, 4))
    vae = AutoencoderKLQwenImage(
        base_dim=4, z_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=0,  # 0: 3x faster on CPU
        temperal_downsample=[False, True, True], latents_mean=[0.0] * 4, latents_std=[1.0] * 4)
    cls = QwenImageEditPlusPipeline if plus else \
        QwenImageEditInpaintPipeline if inpaint else QwenImageEditPipeline
    return cls(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder,
               tokenizer=tokenizer, transformer=transformer,
               processor=_processor_class()(image_processor=images, tokenizer=tokenizer))


def _qwen_processor_layout(pipe: Any, dest: Path) -> None:
    """processor/ as Qwen-Image-Edit ships it: Qwen2VLProcessor's preprocessor_config.json
    (a Qwen2VLImageProcessor), video_preprocessor_config.json and the tokenizer's files."""
    import json
    import shutil

    folder = dest / "processor"
    shutil.rmtree(folder)
    pipe.processor.tokenizer.save_pretrained(folder)
    pipe.processor.image_processor.save_pretrained(folder)
    config = json.loads((folder / "preprocessor_config.json").read_text())
    config |= {"image_processor_type": "Qwen2VLImageProcessor",
               "processor_class": "Qwen2VLProcessor"}
    (folder / "preprocessor_config.json").write_text(json.dumps(config, indent=2))
    video = {k: config[k] for k in ("patch_size", "temporal_patch_size", "merge_size")}
    video |= {"video_processor_type": "Qwen2VLVideoProcessor",
              "processor_class": "Qwen2VLProcessor"}
    (folder / "video_preprocessor_config.json").write_text(json.dumps(video, indent=2))
    index = json.loads((dest / "model_index.json").read_text())
    index["processor"] = ["transformers", "Qwen2VLProcessor"]
    (dest / "model_index.json").write_text(json.dumps(index, indent=2))


# --- control and image-prompt models (issue 9) ------------------------------------------------

GUIDE_FAMILIES = ("sdxl", "sd15")  # the UNet families the tiny guides below fit
_VISION_WIDTH = 32
_VISION_PROJECTION = 24  # differs from the width, so a loader mixing the two fails loudly


def _family_unet(family: str) -> Any:
    if family not in GUIDE_FAMILIES:
        raise ValueError(f"no tiny {family!r} UNet; known: {', '.join(GUIDE_FAMILIES)}")
    sdxl = family == "sdxl"
    return _unet(4, 2 * _CLIP_WIDTH if sdxl else _CLIP_WIDTH, sdxl=sdxl)


def _randomise_zero_parameters(module: Any, seed: int) -> None:
    # a fresh ControlNet starts from zero convolutions (no effect at all until trained); a test
    # must see one act, so give those a small random value
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            if not parameter.any():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)


def build_tiny_controlnet(family: str, dest: Path, seed: int = 1) -> Path:
    """A ControlNet made from the tiny `family` UNet (`ControlNetModel.from_unet`), saved as the
    diffusers folder ControlNet releases use (config.json + diffusion_pytorch_model.safetensors)."""
    from diffusers import ControlNetModel

    torch.manual_seed(0)  # the same UNet the tiny pipelines hold
    unet = _family_unet(family)
    torch.manual_seed(seed)
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 8, 8, 8))
    _randomise_zero_parameters(controlnet, seed)
    controlnet.save_pretrained(dest, safe_serialization=True)
    return dest


def build_tiny_t2i_adapter(dest: Path, seed: int = 2) -> Path:
    """An SDXL-layout T2I-Adapter (full_adapter_xl) whose features fit the tiny SDXL UNet."""
    from diffusers import T2IAdapter

    torch.manual_seed(seed)
    adapter = T2IAdapter(in_channels=3, channels=[16, 32, 32, 32], num_res_blocks=1,
                         downscale_factor=16, adapter_type="full_adapter_xl")
    adapter.save_pretrained(dest, safe_serialization=True)
    return dest


def build_tiny_image_encoder(dest: Path) -> Path:
    """A tiny CLIP vision tower with projection, saved as IP-Adapter releases ship theirs
    (an `image_encoder` folder: config.json + model.safetensors)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(3)
    config = CLIPVisionConfig(hidden_size=_VISION_WIDTH, intermediate_size=37,
                              num_hidden_layers=2, num_attention_heads=4, image_size=32,
                              patch_size=8, projection_dim=_VISION_PROJECTION)
    CLIPVisionModelWithProjection(config).save_pretrained(dest, safe_serialization=True)
    return dest


def build_tiny_ip_adapter(family: str, dest: Path, plus: bool = False, seed: int = 4) -> Path:
    """IP-Adapter (or Plus) weights for the tiny `family` UNet in the layout of the official
    .safetensors releases: `image_proj.*` (the image projection or the Plus resampler) and
    `ip_adapter.<n>.to_k_ip/to_v_ip.weight`, numbered as diffusers' loader counts the UNet's
    attention processors (odd numbers: the cross-attention ones)."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    unet = _family_unet(family)
    cross = int(unet.config.cross_attention_dim)
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=generator) * 0.2

    tensors: dict[str, torch.Tensor] = {}
    if plus:  # the Resampler: 4 blocks, 64-wide heads, queries -> `cross` features
        hidden, queries = 64, 4
        tensors |= {"image_proj.latents": rand(1, queries, hidden),
                    "image_proj.proj_in.weight": rand(hidden, _VISION_WIDTH),
                    "image_proj.proj_in.bias": rand(hidden),
                    "image_proj.proj_out.weight": rand(cross, hidden),
                    "image_proj.proj_out.bias": rand(cross),
                    "image_proj.norm_out.weight": torch.ones(cross),
                    "image_proj.norm_out.bias": torch.zeros(cross)}
        for i in range(4):
            block = f"image_proj.layers.{i}"
            tensors |= {f"{block}.0.norm1.weight": torch.ones(hidden),
                        f"{block}.0.norm1.bias": torch.zeros(hidden),
                        f"{block}.0.norm2.weight": torch.ones(hidden),
                        f"{block}.0.norm2.bias": torch.zeros(hidden),
                        f"{block}.0.to_q.weight": rand(64, hidden),
                        f"{block}.0.to_kv.weight": rand(128, hidden),
                        f"{block}.0.to_out.weight": rand(hidden, 64),
                        f"{block}.1.0.weight": torch.ones(hidden),
                        f"{block}.1.0.bias": torch.zeros(hidden),
                        f"{block}.1.1.weight": rand(hidden * 4, hidden),
                        f"{block}.1.3.weight": rand(hidden, hidden * 4)}
    else:  # plain IP-Adapter: the CLIP image embedding -> 4 tokens
        tensors |= {"image_proj.proj.weight": rand(4 * cross, _VISION_PROJECTION),
                    "image_proj.proj.bias": rand(4 * cross),
                    "image_proj.norm.weight": torch.ones(cross),
                    "image_proj.norm.bias": torch.zeros(cross)}
    number = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        block = name.split(".")
        width = unet.config.block_out_channels
        if block[0] == "mid_block":
            hidden_size = width[-1]
        elif block[0] == "up_blocks":
            hidden_size = list(reversed(width))[int(block[1])]
        else:
            hidden_size = width[int(block[1])]
        tensors[f"ip_adapter.{number}.to_k_ip.weight"] = rand(hidden_size, cross)
        tensors[f"ip_adapter.{number}.to_v_ip.weight"] = rand(hidden_size, cross)
        number += 2
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(dest))
    return dest


def build_tiny_depth_estimator(dest: Path) -> Path:
    """A tiny DPT depth model with its image processor, saved as transformers depth models are
    released (config.json, model.safetensors, preprocessor_config.json)."""
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    torch.manual_seed(5)
    config = DPTConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                       intermediate_size=37, image_size=32, patch_size=8,
                       backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[8, 8, 16, 16],
                       fusion_hidden_size=16, is_hybrid=False)
    DPTForDepthEstimation(config).save_pretrained(dest, safe_serialization=True)
    DPTImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=False
                      ).save_pretrained(dest)
    return dest


def build_tiny_pose_estimator(dest: Path) -> Path:
    """A tiny ViTPose (17 COCO keypoints) with its image processor, saved as transformers
    releases them (config.json, model.safetensors, preprocessor_config.json). Its heatmaps are
    lifted by a bias so every keypoint scores above the drawing threshold, as a trained model's
    do on a clear figure; where each lands is random."""
    from transformers import (
        VitPoseBackboneConfig,
        VitPoseConfig,
        VitPoseForPoseEstimation,
        VitPoseImageProcessor,
    )

    torch.manual_seed(8)
    backbone = VitPoseBackboneConfig(image_size=[32, 24], patch_size=[8, 8], hidden_size=16,
                                     num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=16, out_indices=[1])
    model = VitPoseForPoseEstimation(VitPoseConfig(backbone_config=backbone, scale_factor=2,
                                                   num_labels=17))
    with torch.no_grad():
        model.head.conv.weight.normal_(0, 0.5)
        model.head.conv.bias.fill_(1.0)
    model.save_pretrained(dest, safe_serialization=True)
    VitPoseImageProcessor(size={"height": 32, "width": 24}).save_pretrained(dest)
    return dest


def build_tiny_flux_controlnet(dest: Path, seed: int = 7) -> Path:
    """A FLUX ControlNet made from the tiny FLUX transformer (`from_transformer`), saved as
    FLUX ControlNet releases are (config.json + diffusion_pytorch_model.safetensors)."""
    from diffusers import FluxControlNetModel

    torch.manual_seed(0)
    transformer = _flux(fill=False).transformer  # the one the tiny FLUX pipeline holds
    torch.manual_seed(seed)
    controlnet = FluxControlNetModel.from_transformer(
        transformer, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2)
    _randomise_zero_parameters(controlnet, seed)
    controlnet.save_pretrained(dest, safe_serialization=True)
    return dest
