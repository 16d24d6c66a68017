"""Tiny random-weight segmenters and a matting model, built from their transformers configs and
saved as they are released (config.json + model.safetensors, save_pretrained), so tests load
them through the daemon's real loader. Working size 64 px (the real ones: 1024 and 512), so a
whole model runs in milliseconds on a CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

SIDE = 64  # the tiny models' working size (image_size); real SAM / SAM 2 work at 1024
SAM3_SIDE = 56  # the tiny SAM 3's (a multiple of its 14-pixel patches; the real one: 1008)


def build_tiny_sam(dest: Path, seed: int = 11) -> Path:
    """SamModel (SAM 1): a 1-layer ViT image encoder, prompt encoder and mask decoder."""
    from transformers import SamConfig, SamModel

    torch.manual_seed(seed)
    config = SamConfig(
        vision_config={"hidden_size": 16, "output_channels": 16, "num_hidden_layers": 2,
                       "num_attention_heads": 2, "image_size": SIDE, "patch_size": 8,
                       "window_size": 4, "global_attn_indexes": [1], "num_pos_feats": 8,
                       "mlp_dim": 32},
        prompt_encoder_config={"hidden_size": 16, "image_size": SIDE, "patch_size": 8,
                               "mask_input_channels": 4},
        mask_decoder_config={"hidden_size": 16, "mlp_dim": 32, "num_attention_heads": 2,
                             "iou_head_hidden_dim": 16})
    SamModel(config).eval().save_pretrained(dest, safe_serialization=True)
    return dest


def build_tiny_sam2(dest: Path, seed: int = 12) -> Path:
    """Sam2Model (SAM 2.1): a 2-stage Hiera image encoder with its feature pyramid."""
    from transformers import Sam2Config, Sam2Model

    torch.manual_seed(seed)
    backbone = {"model_type": "sam2_hiera_det_model", "hidden_size": 8, "image_size": [SIDE, SIDE],
                "num_query_pool_stages": 2,
                "blocks_per_stage": [1, 1, 2], "embed_dim_per_stage": [8, 16, 32],
                "num_attention_heads_per_stage": [1, 1, 2], "window_size_per_stage": [4, 4, 4],
                "global_attention_blocks": [3],
                "window_positional_embedding_background_size": [2, 2]}
    config = Sam2Config(
        vision_config={"backbone_config": backbone, "backbone_channel_list": [32, 16, 8],
                       "backbone_feature_sizes": [[16, 16], [8, 8], [4, 4]],
                       "fpn_hidden_size": 16, "fpn_top_down_levels": [1, 2],
                       "num_feature_levels": 3},
        prompt_encoder_config={"hidden_size": 16, "image_size": SIDE, "patch_size": 16,
                               "mask_input_channels": 4},
        mask_decoder_config={"hidden_size": 16, "mlp_dim": 32, "num_attention_heads": 2,
                             "iou_head_hidden_dim": 16})
    Sam2Model(config).eval().save_pretrained(dest, safe_serialization=True)
    return dest


def build_tiny_sam3(dest: Path, seed: int = 14) -> Path:
    """Sam3Model (SAM 3, prompts by words): a tiny ViT with its feature pyramid, a 1-layer CLIP
    text encoder with a character-level tokenizer saved beside it (as SAM 3 is released), and
    one-layer DETR encoder / decoder with 8 queries. Working size 56 (14-pixel patches)."""
    from transformers import Sam3Config, Sam3Model

    from tests.support.tiny_models import clip_tokenizer

    torch.manual_seed(seed)
    tokenizer = clip_tokenizer()
    width = 16
    config = Sam3Config(
        vision_config={"backbone_config": {
            "model_type": "sam3_vit_model", "hidden_size": width, "intermediate_size": 32,
            "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": SAM3_SIDE,
            "patch_size": 14, "window_size": 2, "global_attn_indexes": [1],
            "pretrain_image_size": 28},
            "fpn_hidden_size": width, "backbone_feature_sizes": [[16, 16], [8, 8], [4, 4]]},
        text_config={"vocab_size": len(tokenizer), "hidden_size": width,
                     "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                     "max_position_embeddings": 32, "projection_dim": width,
                     "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2},
        geometry_encoder_config={"hidden_size": width, "num_layers": 1,
                                 "num_attention_heads": 2, "intermediate_size": 32,
                                 "roi_size": 2},
        detr_encoder_config={"hidden_size": width, "num_layers": 1, "num_attention_heads": 2,
                             "intermediate_size": 32},
        detr_decoder_config={"hidden_size": width, "num_layers": 1, "num_queries": 8,
                             "num_attention_heads": 2, "intermediate_size": 32},
        mask_decoder_config={"hidden_size": width, "num_upsampling_stages": 3,
                             "num_attention_heads": 2})
    Sam3Model(config).eval().save_pretrained(dest, safe_serialization=True)
    tokenizer.save_pretrained(dest)
    return dest


def build_tiny_vitmatte(dest: Path, seed: int = 13) -> Path:
    """VitMatteForImageMatting: a tiny ViTDet backbone over image + trimap (4 channels)."""
    from transformers import VitDetConfig, VitMatteConfig, VitMatteForImageMatting

    torch.manual_seed(seed)
    backbone = VitDetConfig(num_channels=4, image_size=64, patch_size=16, hidden_size=16,
                            num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2,
                            out_features=["stage2"])
    config = VitMatteConfig(backbone_config=backbone, hidden_size=16,
                            convstream_hidden_sizes=[8, 8, 8], fusion_hidden_sizes=[16, 8, 8, 8])
    VitMatteForImageMatting(config).eval().save_pretrained(dest, safe_serialization=True)
    return dest


def segmentation_home(home: Path) -> Path:
    """An SFUMATO_HOME with tiny `sam`, `sam2`, `sam3` and `vitmatte` registered as `sfumato models
    add` registers them (kinds detected from the folders)."""
    from sfumato.core.models.model_add import register_model
    from sfumato.core.models.registry import Registry

    registry = Registry(home)
    folders = home / "models" / "segment"
    for name, build in (("sam", build_tiny_sam), ("sam2", build_tiny_sam2),
                        ("sam3", build_tiny_sam3),
                        ("vitmatte", build_tiny_vitmatte)):
        register_model(registry, name, build(folders / name))
    return home


def known_mask(height: int, width: int) -> np.ndarray:
    """The known answer the test double gives for a (height, width) picture: a disc and a
    checkered band, so any shift, flip or scaling of the mask on its way to the host shows."""
    y, x = np.mgrid[0:height, 0:width]
    disc = (x - width * 0.4) ** 2 + (y - height * 0.5) ** 2 < (min(height, width) * 0.3) ** 2
    band = (y > height * 0.8) & ((x // 3 + y // 2) % 2 == 0)
    return np.asarray(disc | band)
