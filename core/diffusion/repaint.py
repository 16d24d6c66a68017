"""Repaint one crop of a layer with a diffusion pipeline, once per seed, and return the result
layers: crop -> the model's native size -> pipeline -> back to the crop's size -> colour match
-> RGBA layer whose alpha is the soft mask."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from sfumato.bridge.raster import Layout, Raster
from sfumato.core.diffusion.pipeline_call import Geometry, expected_steps, generate
from sfumato.core.diffusion.step_callback import StepProgress
from sfumato.core.pixels.arrays import array_to_raster
from sfumato.core.pixels.compose import (
    compose_result_layer,
    match_colours,
    resize_rgb,
    rgb_over_grey,
    to_float,
)
from sfumato.core.pixels.geometry import native_size
from sfumato.core.pixels.masks import resize_mask
from sfumato.core.task_api import CancelToken

if TYPE_CHECKING:
    from sfumato.core.diffusion.conditioning import CropGuidance

PREVIEW_EVERY = 4


@dataclass(frozen=True)
class Prompting:
    prompt: str
    negative_prompt: str
    steps: int
    guidance: float | None
    strength: float


def repaint(
    pipe: Any,
    crop_rgba: np.ndarray,
    soft: np.ndarray,
    seeds: tuple[int, ...],
    prompting: Prompting,
    geometry: Geometry,
    *,
    keep_alpha: bool,
    progress: Callable[[int, int, str], None],
    preview: Callable[[Raster, int], None] | None,
    cancel: CancelToken,
    guidance: CropGuidance | None = None,
    match_colour: bool = True,
    extra: dict[str, Any] | None = None,
) -> list[np.ndarray]:
    """One RGBA layer (the crop's size and dtype) per seed; see `compose_result_layer`.
    Previews go to `preview` as small rgba8 rasters. `guidance`: controls and image prompts
    for this crop (core/guidance.py). `match_colour` False: a new picture (generate) keeps its
    own colours instead of taking those of the pixels around it. `extra`: further keyword
    arguments for every pipeline call (edit: image guidance, true CFG)."""
    height, width = crop_rgba.shape[:2]
    size = native_size(width, height, geometry.native_pixels, geometry.multiple)
    model_image = resize_rgb(rgb_over_grey(crop_rgba), size)
    model_mask = resize_mask((soft > 0).astype(np.float32), size)
    # known pixels (outside the soft mask, not transparent) tell the model's colour drift
    known = np.where(soft == 0, to_float(crop_rgba[..., 3]), 0.0)
    per_variant = expected_steps(prompting.steps, prompting.strength)
    to_preview = None if preview is None else (
        lambda image, step: preview(array_to_raster(image, Layout.RGBA8), step))
    layers = []
    guided = nullcontext(None) if guidance is None else \
        guidance.applied(pipe, model_image, per_variant)
    with guided as runs:
        for index, seed in enumerate(seeds):
            cancel.raise_if_cancelled()
            if runs is not None:
                runs.next_run()  # the control window counts this run's steps from 0

            # one bar over all variants; `steps` is what the pipeline really runs per variant
            def report(step: int, steps: int, stage: str, index: int = index) -> None:
                progress(index * steps + step, steps * len(seeds), stage)

            callback = StepProgress(
                report,
                cancel,
                total=per_variant,
                stage="denoise" if len(seeds) == 1 else f"variant {index + 1}/{len(seeds)}",
                preview=to_preview,
                preview_every=PREVIEW_EVERY,
                image_size=size,
            )
            generated = generate(
                pipe if runs is None or runs.pipe is None else runs.pipe,
                model_image,
                model_mask,
                prompt=prompting.prompt,
                negative_prompt=prompting.negative_prompt,
                steps=prompting.steps,
                guidance=prompting.guidance,
                strength=prompting.strength,
                seed=seed,
                callback=callback,
                extra={**(extra or {}), **({} if runs is None else runs.kwargs)},
            )
            generated = resize_rgb(generated, (width, height))
            if match_colour:
                generated = match_colours(generated, crop_rgba, known)
            layers.append(compose_result_layer(generated, crop_rgba, soft,
                                               keep_alpha=keep_alpha))
    return layers


def layer_name(verb: str, prompt: str, seed: int) -> str:
    """"Verb: the prompt's start (seed N)", what a result layer is called in the editor."""
    short = prompt if len(prompt) <= 30 else prompt[:29].rstrip() + "\u2026"
    return f"{verb}: {short} (seed {seed})" if short else f"{verb} (seed {seed})"
