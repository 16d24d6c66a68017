"""Checked inputs of the diffusion tasks (inpaint, refine): request params and rasters.

Every refusal is a SfumatoError whose message says what to send instead.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.raster import Layout, Raster
from sfumato.bridge.schema import INPAINT, SEED_LIMIT, TaskSchema
from sfumato.core.diffusion.guide_inputs import guide_indices
from sfumato.core.errors import SfumatoError
from sfumato.core.pixels.arrays import raster_to_array
from sfumato.core.task_api import TaskContext

LAYER_LAYOUTS = INPAINT.layouts


@dataclass(frozen=True)
class DiffusionParams:
    prompt: str
    negative_prompt: str
    steps: int
    guidance: float | None  # None: the model family's usual value
    strength: float
    seeds: tuple[int, ...]  # one per variant
    grow: int
    feather: int
    context: int
    resolution: int | None  # side of the square the model works at; None: its native size


def read_params(params: dict[str, Any], schema: TaskSchema) -> DiffusionParams:
    """The request's params, checked against the task's contract, defaults filled in."""
    values = schema.read(params)
    variants = int(values["variants"])
    seed = values["seed"]
    first = secrets.randbelow(SEED_LIMIT) if seed is None else int(seed)
    return DiffusionParams(
        prompt=str(values.get("prompt", values.get("instruction", ""))).strip(),  # edit: its
        # instruction is what the model reads as the prompt
        negative_prompt=values["negative_prompt"].strip(),
        steps=values["steps"],
        guidance=values["guidance"],
        strength=float(values.get("strength", 1.0)),  # generate, expand: always 1
        seeds=tuple((first + i) % SEED_LIMIT for i in range(variants)),
        grow=values.get("grow", 0),  # expand has no selection to grow
        feather=values["feather"],
        context=values.get("context", 0),  # generate sees no image around its area
        resolution=values["resolution"],
    )


def read_layer(ctx: TaskContext) -> tuple[np.ndarray, Layout]:
    """The layer crop (rasters[0]) as an (H, W, 4) RGBA array, and its layout."""
    if not ctx.rasters:
        raise SfumatoError(ErrorCode.BAD_PARAMS, "send the layer's pixels as the first raster")
    raster = ctx.rasters[0]
    if raster.layout not in LAYER_LAYOUTS:
        if raster.layout is Layout.RGBAF32:
            why = "floating-point layers are not supported yet"
        else:
            why = f"{raster.layout.value} is not an RGBA layer"
        raise SfumatoError(
            ErrorCode.UNSUPPORTED_LAYOUT,
            f"{why}; send the layer as rgba8, bgra8 or rgba16 "
            "(in the editor: switch the image to 8- or 16-bit integer precision)",
        )
    _check_size(raster, ctx, "layer")
    return raster_to_array(raster), raster.layout


def read_mask(ctx: TaskContext, shape: tuple[int, int], required: bool) -> np.ndarray | None:
    """The selection (rasters[1]) as an (H, W) uint8 array the layer's size; None when it is
    optional and absent. A raster that a control or image prompt names is never the mask."""
    if len(ctx.rasters) < 2 or 1 in guide_indices(ctx.params):
        if required:
            raise SfumatoError(
                ErrorCode.BAD_PARAMS, "send the selection mask as the second raster (gray8)"
            )
        return None
    raster = ctx.rasters[1]
    if raster.layout not in (Layout.GRAY8, Layout.GRAY16):
        raise SfumatoError(
            ErrorCode.UNSUPPORTED_LAYOUT,
            f"the mask is {raster.layout.value}; send it as gray8 (0 keep, 255 selected)",
        )
    height, width = shape
    if (raster.width, raster.height) != (width, height):
        raise SfumatoError(
            ErrorCode.BAD_PARAMS,
            f"the mask is {raster.width}x{raster.height} but the layer is {width}x{height}; "
            "send the selection cropped to the same rectangle as the layer",
        )
    mask = raster_to_array(raster)[..., 0]
    if mask.dtype != np.uint8:  # gray16: keep 8 bits, rounding
        mask = ((mask.astype(np.uint32) + 128) // 257).astype(np.uint8)
    return mask


def _check_size(raster: Raster, ctx: TaskContext, name: str) -> None:
    if raster.is_empty:
        raise SfumatoError(
            ErrorCode.EMPTY_IMAGE,
            f"the {name} is empty ({raster.width}x{raster.height}); pick a layer with pixels",
        )
    if raster.width * raster.height > ctx.limits.max_pixels:
        raise SfumatoError(
            ErrorCode.IMAGE_TOO_LARGE,
            f"the {name} is {raster.width}x{raster.height}, over this daemon's limit of "
            f"{ctx.limits.max_pixels} pixels; crop it to the area around the selection",
        )
