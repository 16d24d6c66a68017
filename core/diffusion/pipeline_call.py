"""One call of a diffusers pipeline, the same way for every family the tasks use (SD 1.5,
SDXL, FLUX; inpaint, img2img and fill pipelines): what size it works at, how long a prompt it
reads, and the keyword arguments each pipeline class takes."""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sfumato.core.device.speed_options import tile_vae_if_large
from sfumato.core.pixels.compose import from_float

MAX_SCHEDULE = 1000  # diffusion models are trained on 1000 timesteps


@dataclass(frozen=True)
class Geometry:
    native_pixels: int  # the area the model was trained at
    multiple: int  # each side a multiple of this (VAE factor, x2 for FLUX's 2x2 packing)


# Qwen-Image-Edit resizes the picture it reads to about 1 MP, each side a multiple of 32, and
# places its output token for token over that picture: an output of any other size comes back
# zoomed against it. So it works at exactly that size, whatever `resolution` says.
QWEN_EDIT_GEOMETRY = Geometry(native_pixels=1024 * 1024, multiple=32)


def fixed_geometry(pipe: Any) -> bool:
    """True for a model that works only at its own size (`resolution` cannot change it)."""
    return type(pipe).__name__.startswith("QwenImageEdit")


def geometry(pipe: Any, resolution: int | None = None) -> Geometry:
    """The model's working size; `resolution` (a square's side) overrides its native one
    where the model allows (`fixed_geometry`)."""
    if fixed_geometry(pipe):
        return QWEN_EDIT_GEOMETRY
    scale = int(getattr(pipe, "vae_scale_factor", 8))
    packed = hasattr(pipe, "transformer")  # FLUX packs 2x2 latent patches into tokens
    multiple = scale * 2 if packed else scale
    if resolution is None:
        unet = getattr(pipe, "unet", None)
        sample = unet.config.sample_size if unet is not None else None
        if not isinstance(sample, int):
            sample = int(getattr(pipe, "default_sample_size", 128))
        resolution = sample * scale
    return Geometry(native_pixels=resolution * resolution, multiple=multiple)


def is_flux(pipe: Any) -> bool:
    return type(pipe).__name__.startswith("Flux")


def default_guidance(pipe: Any) -> float:
    name = type(pipe).__name__
    if name == "FluxFillPipeline":
        return 30.0  # FLUX Fill is guidance-distilled at high values
    if name.startswith("FluxKontext"):
        return 2.5  # what Black Forest Labs run Kontext at
    if name.startswith("Flux2Klein"):  # the distilled (4-step) Kleins take no guidance
        return 1.0 if getattr(pipe.config, "is_distilled", False) else 4.0
    if name.startswith("QwenImageEdit"):
        return 4.0  # its true CFG scale (`edit_options`)
    if name == "StableDiffusionXLInstructPix2PixPipeline":
        return 5.0
    if name == "StableDiffusionInstructPix2PixPipeline":
        return 7.5
    return 3.5 if is_flux(pipe) else 7.0


IMAGE_GUIDANCE = 1.5  # InstructPix2Pix's usual image guidance scale


def edit_options(pipe: Any, guidance: float | None, image_guidance: float | None,
                 negative_prompt: str) -> tuple[dict[str, Any], list[str]]:
    """The further keyword arguments an edit model takes, and what the artist should be told:
    InstructPix2Pix weighs the input picture (image guidance); Qwen-Image-Edit guides by true
    CFG, which needs a negative prompt (a space when there is none)."""
    accepted = inspect.signature(pipe.__call__).parameters
    extra: dict[str, Any] = {}
    warnings: list[str] = []
    if "image_guidance_scale" in accepted:
        extra["image_guidance_scale"] = IMAGE_GUIDANCE if image_guidance is None \
            else image_guidance
    elif image_guidance is not None:
        warnings.append("image guidance is InstructPix2Pix's setting; this model ignored it")
    if type(pipe).__name__.startswith("QwenImageEdit"):
        extra["true_cfg_scale"] = default_guidance(pipe) if guidance is None else guidance
        extra["negative_prompt"] = negative_prompt or " "
        extra["guidance_scale"] = None  # only guidance-distilled transformers read it
    return extra, warnings


def fit_prompts(pipe: Any, prompt: str, negative_prompt: str) -> tuple[str, str, list[str]]:
    """The prompt and negative prompt as the model will read them, and what the artist should
    be told about the difference (cut prompts, an ignored negative prompt)."""
    prompt, cut = _fit_prompt(pipe, prompt, "prompt")
    negative, cut_negative = _fit_prompt(pipe, negative_prompt, "negative prompt")
    warnings = [w for w in (cut, cut_negative) if w]
    if negative and is_flux(pipe):
        warnings.append("FLUX models do not use a negative prompt; it was ignored")
        negative = ""
    return prompt, negative, warnings


def _fit_prompt(pipe: Any, text: str, what: str) -> tuple[str, str | None]:
    # SD and SDXL read 75 CLIP tokens; FLUX reads its T5 encoder's sequence (its CLIP part
    # only pools the start, by design, so that limit is not reported)
    if not text:
        return text, None
    if is_flux(pipe) and getattr(pipe, "tokenizer_2", None) is not None:
        tokenizer, limit = pipe.tokenizer_2, 511  # max_sequence_length 512, one for </s>
    elif is_flux(pipe):  # FLUX.2: one Qwen3 encoder, 512 tokens with its chat template
        tokenizer, limit = pipe.tokenizer, 480
    else:
        tokenizer = pipe.tokenizer
        limit = int(tokenizer.model_max_length) - 2  # start and end tokens
    ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    if len(ids) <= limit:
        return text, None
    cut = tokenizer.decode(ids[:limit], skip_special_tokens=True).strip()
    warning = (
        f"the {what} is {len(ids)} tokens long and this model reads {limit}; "
        f"everything after \"{cut[-40:]}\" was left out"
    )
    return cut, warning


def schedule_steps(steps: int, strength: float) -> int:
    """Steps to schedule so at least one runs: img2img-style pipelines run steps x strength."""
    if strength >= 1.0 or steps * strength >= 1.0:
        return steps
    return min(MAX_SCHEDULE, max(steps, math.ceil(1.0 / strength)))


def expected_steps(steps: int, strength: float) -> int:
    scheduled = schedule_steps(steps, strength)
    return max(1, min(scheduled, int(scheduled * min(strength, 1.0))))


def generate(
    pipe: Any,
    image: np.ndarray,
    mask: np.ndarray | None,
    *,
    prompt: str,
    negative_prompt: str,
    steps: int,
    guidance: float | None,
    strength: float,
    seed: int,
    callback: Any,
    extra: dict[str, Any] | None = None,
) -> np.ndarray:
    """Run `pipe` once on float (or uint8) RGB `image` (already at a size the model takes) and
    return the generated float32 RGB image of the same size. `mask` (float, > 0 = regenerate)
    is used by pipelines that take one; the seed drives a CPU generator so results repeat on
    any device.
    `extra` holds further keyword arguments for the pipeline."""
    import torch
    from PIL import Image

    height, width = image.shape[:2]
    accepted = inspect.signature(pipe.__call__).parameters
    kwargs: dict[str, Any] = {
        "prompt": prompt,
        "num_inference_steps": schedule_steps(steps, strength),
        "guidance_scale": default_guidance(pipe) if guidance is None else guidance,
        "generator": torch.Generator(device="cpu").manual_seed(seed),
        "output_type": "np",
    }
    if "callback_on_step_end" in accepted:
        kwargs["callback_on_step_end"] = callback
    elif "callback" in accepted and callback is not None:  # the older hook (SDXL
        # InstructPix2Pix): step, timestep, latents after every step
        kwargs["callback"] = lambda step, timestep, latents: callback(
            pipe, step, timestep, {"latents": latents})
        kwargs["callback_steps"] = 1
    if "image" in accepted:  # text-to-image pipelines only take the size
        pixels = image if image.dtype == np.uint8 else from_float(image, np.dtype(np.uint8))
        kwargs["image"] = Image.fromarray(pixels, "RGB")
    if "strength" in accepted:
        kwargs["strength"] = strength
    if "mask_image" in accepted:
        selected = np.full((height, width), 255, np.uint8) if mask is None else mask > 0
        kwargs["mask_image"] = Image.fromarray(np.where(selected, 255, 0).astype(np.uint8), "L")
    if "height" in accepted:
        kwargs["height"], kwargs["width"] = height, width
    if "max_area" in accepted:  # FLUX Kontext: else it rescales to 1 MP and snaps the input
        # to its preferred sizes, and the result comes back zoomed against the picture
        kwargs["max_area"], kwargs["_auto_resize"] = width * height, False
    if negative_prompt and "negative_prompt" in accepted:
        kwargs["negative_prompt"] = negative_prompt
    kwargs.update(extra or {})  # e.g. ip_adapter_image (core/guidance.py)
    tile_vae_if_large(pipe, width, height)  # large crops: VAE in tiles, else whole
    result = pipe(**kwargs)
    return np.asarray(result.images[0], dtype=np.float32)
