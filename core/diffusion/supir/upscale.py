"""The upscale task's SUPIR route: a picture enlarged and restored by a `supir` model.

The picture is first resized (bicubic) to the output size, rounded to whole latent tiles of
64 px and at least the SDXL base's native side, as SUPIR's authors do; SUPIR restores it
there, and the result is resized to the exact size asked for.
"""

from __future__ import annotations

import math
import secrets
from typing import Any

import torch
import torch.nn.functional as F
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.schema import SEED_LIMIT, SUPIR_BASE_KINDS
from sfumato.core.device.memory import is_out_of_memory
from sfumato.core.diffusion.pipeline_call import geometry
from sfumato.core.diffusion.supir.pipeline import LATENT_TILE, SupirPipeline
from sfumato.core.diffusion.supir.sampler import SamplerSettings
from sfumato.core.errors import SfumatoError
from sfumato.core.models.registry import ModelEntry
from sfumato.core.task_api import TaskContext

SCALE = 2.0  # a SUPIR model's "own" scale, when none is asked for
MULTIPLE = 64  # SUPIR works on sides that are whole multiples of 64 px
MIN_LATENT_TILE = 32  # 256 px: below that a tile sees too little of the picture


def supir_upscale(ctx: TaskContext, entry: ModelEntry, rgb: torch.Tensor, out_h: int,
                  out_w: int, values: dict[str, Any]) -> torch.Tensor:
    """`rgb` (3, h, w) sRGB in [0, 1] enlarged to (3, out_h, out_w) by the SUPIR model
    `entry` over its SDXL base; prompt, steps and seed are the upscale's refine params."""
    base = ctx.models.load_pipeline(base_model(ctx, entry), "refine")
    if getattr(base, "_sfumato_offloaded", False):
        # SUPIR calls the UNet's blocks one by one, which model offload's hooks (the lean
        # mode after running out of memory) never see: the base runs on the device whole
        device = base._execution_device
        base.remove_all_hooks()
        base.to(device)
        base._sfumato_offloaded = False
    weights = ctx.models.load(entry)
    try:
        pipe = SupirPipeline.from_weights(base, weights)
    except RuntimeError as exc:  # shapes or names that do not fit the base
        raise SfumatoError(
            ErrorCode.WRONG_MODEL_KIND,
            f"the SUPIR model {entry.name!r} does not fit the SDXL base it runs over "
            f"({str(exc).splitlines()[0]}); SUPIR-v0Q/v0F need an SDXL 1.0 base",
        ) from None
    seed = values["refine_seed"]
    seed = secrets.randbelow(SEED_LIMIT) if seed is None else seed
    work_h, work_w = working_size(out_h, out_w, math.isqrt(geometry(base).native_pixels))
    image = F.interpolate(rgb[None].float(), size=(work_h, work_w), mode="bicubic",
                          align_corners=False).clamp(0, 1) * 2 - 1
    settings = SamplerSettings(steps=values["refine_steps"])

    def on_step(done: int, total: int) -> None:
        ctx.cancel.raise_if_cancelled()
        ctx.progress(done, total, "supir")

    ctx.cancel.raise_if_cancelled()
    tile = (values["refine_tile"] or 0) // 8 or LATENT_TILE  # output px -> latent px
    while True:  # out of memory: again in smaller tiles, as the tiled refine does
        try:
            restored = pipe(image, values["refine_prompt"].strip(), settings, seed, on_step,
                            tile, ctx.cancel.raise_if_cancelled)
            break
        except Exception as exc:  # only allocation failures are retried
            if not is_out_of_memory(exc):
                raise
            if tile <= MIN_LATENT_TILE:
                raise SfumatoError(
                    ErrorCode.OUT_OF_MEMORY,
                    f"SUPIR does not fit in free memory even in {MIN_LATENT_TILE * 8} px tiles; "
                    "close other GPU programs or upscale a selection",
                ) from None
            release_memory()
            tile = max(MIN_LATENT_TILE, tile // 2)
            ctx.progress(0, settings.steps, f"supir: out of memory, {tile * 8} px tiles")
    restored = (restored.to(rgb.device) + 1) / 2
    return F.interpolate(restored, size=(out_h, out_w), mode="bicubic", align_corners=False,
                         antialias=True)[0].clamp(0, 1)


def base_model(ctx: TaskContext, entry: ModelEntry) -> ModelEntry:
    """The SDXL base a SUPIR model runs over: the one it was registered with (its config
    names it), else the first registered SDXL model."""
    if entry.config:
        return ctx.models.entry(entry.config, SUPIR_BASE_KINDS, default=None)
    found = ctx.models.candidates(SUPIR_BASE_KINDS)
    if not found:
        raise SfumatoError(
            ErrorCode.UNKNOWN_MODEL,
            f"the SUPIR model {entry.name!r} runs over an SDXL base model and none is "
            "registered; add one with `sfumato models add NAME SDXL_FOLDER_OR_FILE`",
        )
    return found[0]


def working_size(out_h: int, out_w: int, native: int) -> tuple[int, int]:
    """The size SUPIR works at: the output's, at least `native` on the short side, in whole
    multiples of 64."""
    grow = max(1.0, native / min(out_h, out_w))
    return (max(MULTIPLE, round(out_h * grow / MULTIPLE) * MULTIPLE),
            max(MULTIPLE, round(out_w * grow / MULTIPLE) * MULTIPLE))


def release_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
