"""The SUPIR pipeline, in the diffusers style: an SDXL base pipeline's parts plus SUPIR's
control encoder, connectors and degradation-robust encoder. Reads top to bottom in __call__:

1. the prompt, with SUPIR's quality words appended, and its negative, as SDXL conditions;
2. the low-quality picture (already resized to the output size) through the
   degradation-robust encoder: its latent steers the control encoder at every step;
3. that latent decoded and re-encoded by the plain VAE: the "stage 1" picture and its latent,
   the centre restoration guidance pulls towards;
4. the restoration-guided sampler from pure noise (tiled when larger than one tile);
5. decoded, then its colours matched to the stage-1 picture (wavelet colour fix).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from sfumato.core.diffusion.supir.checkpoint import SupirWeights
from sfumato.core.diffusion.supir.colour_fix import wavelet_colour_fix
from sfumato.core.diffusion.supir.control_adapter import ControlEncoder, build_connectors
from sfumato.core.diffusion.supir.restoring_unet import restoring_unet
from sfumato.core.diffusion.supir.sampler import (
    SamplerSettings,
    Window,
    discrete_sigmas,
    guidance_scale,
    sample,
    timestep_of,
)
from torch import nn

# SUPIR's published prompts (options/SUPIR_v0.yaml): the quality words every prompt gets, and
# the negative prompt
QUALITY_PROMPT = (
    "Cinematic, High Contrast, highly detailed, taken using a Canon EOS R camera, hyper "
    "detailed photo - realistic maximum detail, 32k, Color Grading, ultra HD, extreme "
    "meticulous detailing, skin pore detailing, hyper sharpness, perfect without deformations."
)
NEGATIVE_PROMPT = (
    "painting, oil painting, illustration, drawing, art, sketch, oil painting, cartoon, CG "
    "Style, 3D render, unreal engine, blurring, dirty, messy, worst quality, low quality, "
    "frames, watermark, signature, jpeg artifacts, deformed, lowres, over-smooth"
)
SIZE_CONDITION = (1024, 1024, 0, 0, 1024, 1024)  # original size, crop, target size: as trained
LATENT_TILE = 128  # latent px (1024 image px, SDXL's size) per tile of the sampler


class SupirPipeline:
    def __init__(self, base: Any, control: ControlEncoder, connectors: nn.ModuleList,
                 restoring_vae: Any) -> None:
        self.base = base  # an SDXL pipeline: its UNet, VAE, text encoders and tokenizers
        self.control = control
        self.connectors = connectors
        self.restoring_vae = restoring_vae  # the base VAE with SUPIR's encoder
        self.plain_vae = _vae_with(base.vae, base.vae.encoder, base.vae.quant_conv)

    @classmethod
    def from_weights(cls, base: Any, weights: SupirWeights) -> SupirPipeline:
        """SUPIR's modules built without memory (meta), then given the checkpoint's tensors
        as they are (no copy). Raises RuntimeError where the two do not fit."""
        config = base.unet.config
        with torch.device("meta"):
            control = ControlEncoder(config)
            connectors = build_connectors(config)
            encoder = _vae_with(base.vae, None, None).encoder
        control.load_state_dict(weights.control, strict=True, assign=True)
        connectors.load_state_dict(weights.connectors, strict=True, assign=True)
        encoder.load_state_dict({k.removeprefix("encoder."): v for k, v in weights.encoder.items()
                                 if k.startswith("encoder.")}, strict=True, assign=True)
        quant_conv = base.vae.quant_conv
        if "quant_conv.weight" in weights.encoder:
            quant_conv = nn.Conv2d(quant_conv.in_channels, quant_conv.out_channels, 1,
                                   device="meta")
            quant_conv.load_state_dict({"weight": weights.encoder["quant_conv.weight"],
                                        "bias": weights.encoder["quant_conv.bias"]},
                                       strict=True, assign=True)
        return cls(base, control.eval(), connectors.eval(),
                   _vae_with(base.vae, encoder.eval(), quant_conv))

    @classmethod
    def random(cls, base: Any) -> SupirPipeline:
        """SUPIR's architecture around `base` with random weights (benchmarks, tests)."""
        import copy

        device, dtype = base.unet.device, base.unet.dtype
        with torch.device(device):  # random initialisation where it will run
            control = ControlEncoder(base.unet.config).to(dtype).eval()
            connectors = build_connectors(base.unet.config).to(dtype).eval()
        encoder = copy.deepcopy(base.vae.encoder)
        return cls(base, control, connectors, _vae_with(base.vae, encoder, base.vae.quant_conv))

    @torch.inference_mode()
    def __call__(self, image: torch.Tensor, prompt: str, settings: SamplerSettings, seed: int,
                 on_step: Callable[[int, int], None], tile: int = LATENT_TILE,
                 on_tile: Callable[[], None] = lambda: None) -> torch.Tensor:
        """`image` (1, 3, H, W) in [-1, 1], H and W multiples of 8, restored: same shape."""
        device = self.base.unet.device
        generator = torch.Generator(device=device).manual_seed(seed)
        words = f"{prompt}, {QUALITY_PROMPT}" if prompt else QUALITY_PROMPT
        context, negative, pooled, negative_pooled = self.base.encode_prompt(
            prompt=words, device=device, num_images_per_prompt=1,
            do_classifier_free_guidance=True, negative_prompt=NEGATIVE_PROMPT)
        # the unconditional half first, as the guidance below splits it
        context = torch.cat([negative, context])
        pooled = torch.cat([negative_pooled, pooled])
        ids = torch.tensor([SIZE_CONDITION] * 2, device=device, dtype=context.dtype)

        factor = self.base.vae.config.scaling_factor
        with self._vae_precision() as vae_dtype:
            image = image.to(device, vae_dtype)
            picture = self.restoring_vae.encode(image).latent_dist.mode() * factor
            stage1 = self.restoring_vae.decode(picture / factor).sample.clamp(-1, 1)
            centre = self.plain_vae.encode(stage1).latent_dist.sample(generator) * factor

        table = discrete_sigmas().to(device)
        unet = self.base.unet

        def denoise(x: torch.Tensor, sigma: torch.Tensor, window: Window) -> torch.Tensor:
            timestep = timestep_of(sigma, table)
            sigma_q = table[timestep].reshape(-1, 1, 1, 1)  # the noise level the UNet knows
            pair = torch.cat([x, x]) / (sigma_q**2 + 1).sqrt()
            steps = timestep.repeat(2)
            hint = torch.cat([window.of(picture)] * 2)
            features = self.control(hint, pair, steps, context, pooled, ids)
            noise = restoring_unet(unet, self.connectors, pair, steps, context, pooled, ids,
                                   features, settings.control_scale).float()
            plain, guided = (torch.cat([x, x]) - sigma_q * noise).chunk(2)
            return plain + guidance_scale(settings, float(sigma)) * (guided - plain)

        noise = torch.randn(picture.shape, generator=generator, device=device)
        latent = sample(denoise, noise, centre.float(), settings, generator, tile=tile,
                        on_step=on_step, on_tile=on_tile)
        with self._vae_precision() as vae_dtype:
            restored = self.restoring_vae.decode(latent.to(vae_dtype) / factor).sample
        return wavelet_colour_fix(restored.float(), stage1.float()).clamp(-1, 1)

    @contextlib.contextmanager
    def _vae_precision(self) -> Iterator[torch.dtype]:
        """The VAEs' dtype while they run: SDXL's VAE overflows in fp16 (its config says
        force_upcast), so there it runs in fp32 and goes back after, as diffusers' SDXL
        pipelines do."""
        dtype = self.base.vae.dtype
        if dtype != torch.float16 or not self.base.vae.config.get("force_upcast", False):
            yield dtype
            return
        modules = [self.restoring_vae.encoder, self.restoring_vae.quant_conv,
                   self.base.vae.encoder, self.base.vae.quant_conv, self.base.vae.decoder,
                   self.base.vae.post_quant_conv]
        for module in modules:
            module.to(torch.float32)
        try:
            yield torch.float32
        finally:
            for module in modules:
                module.to(dtype)


def _vae_with(vae: Any, encoder: nn.Module | None, quant_conv: nn.Module | None) -> Any:
    """An AutoencoderKL that shares `vae`'s decoder and has the given encoder (built on the
    meta device: nothing is allocated). With None, the encoder is left to be loaded."""
    from diffusers import AutoencoderKL

    with torch.device("meta"):
        wrapper = AutoencoderKL.from_config(vae.config)
    wrapper.decoder = vae.decoder
    wrapper.post_quant_conv = vae.post_quant_conv
    if encoder is not None:
        wrapper.encoder = encoder
    if quant_conv is not None:
        wrapper.quant_conv = quant_conv
    wrapper.use_tiling = True  # diffusers tiles only pictures larger than its tile
    return wrapper
