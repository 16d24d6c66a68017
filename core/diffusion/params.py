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
from sfumato.core.diffusion.guide_inputs import guide_indices
from sfumato.core.errors import SfumatoError
from sfumato.core.pixels.arrays import raster_to_array
from sfumato.core.task_api import TaskContext

MAX_STEPS = 150
MAX_VARIANTS = 8
MAX_EDGE_PX = 1024  # grow, feather and context
SEED_LIMIT = 2**32  # seeds any host can show and type back
LAYER_LAYOUTS = (Layout.RGBA8, Layout.BGRA8, Layout.RGBA16)


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
    origin: tuple[int, int]
    resolution: int | None  # side of the square the model works at; None: its native size


@dataclass(frozen=True)
class Defaults:
    steps: int
    strength: float | None  # None: the caller must send it
    grow: int
    feather: int
    context: int


def read_params(params: dict[str, Any], defaults: Defaults) -> DiffusionParams:
    """The request's params, checked, with `defaults` for what it leaves out."""
    if defaults.strength is None and params.get("strength") is None:
        raise SfumatoError(
            ErrorCode.BAD_PARAMS,
            "strength is required: how much to change, from 0 (nothing) to 1 (repaint fully)",
        )
    variants = _int(params, "variants", 1, 1, MAX_VARIANTS)
    seed = params.get("seed")
    first = secrets.randbelow(SEED_LIMIT) if seed is None else _int(params, "seed", 0, 0,
                                                                      SEED_LIMIT - 1)
    return DiffusionParams(
        prompt=_text(params, "prompt"),
        negative_prompt=_text(params, "negative_prompt"),
        steps=_int(params, "steps", defaults.steps, 1, MAX_STEPS),
        guidance=_float(params, "guidance", None, 0.0, 100.0),
        strength=_float(params, "strength", defaults.strength, 0.0, 1.0) or 0.0,
        seeds=tuple((first + i) % SEED_LIMIT for i in range(variants)),
        grow=_int(params, "grow", defaults.grow, 0, MAX_EDGE_PX),
        feather=_int(params, "feather", defaults.feather, 0, MAX_EDGE_PX),
        context=_int(params, "context", defaults.context, 0, MAX_EDGE_PX),
        origin=_origin(params.get("origin")),
        resolution=_int(params, "resolution", None, 64, 4096),
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


def _text(params: dict[str, Any], key: str) -> str:
    value = params.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SfumatoError(ErrorCode.BAD_PARAMS, f"{key} must be text, got {value!r}")
    return value.strip()


def _int(params: dict[str, Any], key: str, default: int | None, low: int, high: int) -> Any:
    value = params.get(key)
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SfumatoError(
            ErrorCode.BAD_PARAMS,
            f"{key} must be a whole number from {low} to {high}, got {value!r}",
        )
    return value


def _float(
    params: dict[str, Any], key: str, default: float | None, low: float, high: float
) -> float | None:
    value = params.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise SfumatoError(
            ErrorCode.BAD_PARAMS, f"{key} must be a number from {low:g} to {high:g}, got {value!r}"
        )
    return float(value)


def _origin(value: Any) -> tuple[int, int]:
    if value is None:
        return 0, 0
    ok = isinstance(value, list | tuple) and len(value) == 2
    if not ok or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
        raise SfumatoError(
            ErrorCode.BAD_PARAMS,
            f"origin must be [x, y], the crop's offset in layer pixels, got {value!r}",
        )
    return int(value[0]), int(value[1])
