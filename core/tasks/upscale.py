"""Upscale an image (or a region of it) with an upscaler model.

Reads top to bottom: check the input and params, load the model, run it over the image in
tiles (as many passes as the requested scale needs), resize to the exact requested size,
then put alpha back and pack the result in the input's layout family.

Params: `scale` (float > 0; default the model's), `tile` (core size in input px; 0 = from
free memory), `region` ([x, y, w, h]; only that part is upscaled, seen in its surroundings),
`batch` (tiles per forward pass; default the daemon's `upscale_batch`, by device).
Info: scale, model, width, height, `tiles` and `work_ratio` (window pixels the network ran
over, all passes, per region pixel: 1.0 is no wasted work), and `offset` (where the region
lands) when region is given.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.raster import Layout, Raster
from sfumato.bridge.schema import SUPIR_KINDS, UPSCALE
from sfumato.core.config import DEFAULT_UPSCALER
from sfumato.core.device.memory import (
    free_bytes,
    is_out_of_memory,
    reuse_freed_memory,
    upscaler_bytes_per_pixel,
)
from sfumato.core.device.speed_options import speed_of, tiles_per_batch
from sfumato.core.diffusion.tiled_refine import check_refinable, refine_upscaled
from sfumato.core.errors import SfumatoError
from sfumato.core.models.layer_progress import LayerHooks, PieceProgress, hookable
from sfumato.core.models.upscaler_loader import input_memory_format, output_scale
from sfumato.core.pixels.arrays import array_to_raster, raster_to_array
from sfumato.core.pixels.tensors import (
    linear_to_srgb,
    pack_unit,
    reflect_pad,
    srgb_to_linear,
    to_unit_tensor,
)
from sfumato.core.pixels.tiling import (
    Blender,
    Tile,
    plan_least_work,
    plan_tiles,
    work_ratio,
)
from sfumato.core.task_api import TaskContext, TaskOutput

NAME = "upscale"
MODEL_KINDS = UPSCALE.model_kinds
LAYOUTS = UPSCALE.layouts
PRE_PAD = 10  # reflected border the model sees around the image, as Real-ESRGAN's tools do
OVERLAP = 16  # input px over which neighbouring tiles cross-fade
MIN_TILE = 32
# Feature maps at output resolution (~64 channels) must stay under 2**31 elements, which
# some kernels index with 32 bits: this bounds a tile's whole window, not just its core.
MAX_WINDOW_ELEMENTS = 2**31 - 1
OUTPUT_FEATURES = 64
# The longest window side on the CPU: larger ones measured slower per pixel there (a 2048 px
# layer through the compact net: 0.7 s in 700 px tiles, 1.0 s in 1042 px ones). A 1024 px
# layer with its 10 px borders is still one window.
CPU_MAX_WINDOW_SIDE = 1100
# Real neighbouring pixels each tile sees beyond its core, measured with
# bench/upscale_context.py on the test photo in 2x2 tiles: the fewest that keep tiled
# output within 1/255 of a whole-image pass (RRDBNet: 48 px gives 3/255, 64 px 1/255;
# Compact: 12 px 1/255 on 427 values, 16 px on 9). Unknown architectures get a wide margin.
CONTEXT = {"ESRGAN": 64, "Compact": 16}
DEFAULT_CONTEXT = 96
MEMORY_SHARE = {"cuda": 0.6, "cpu": 0.35}  # of free memory one window may take
REPORT_S = 0.5  # the longest a running tile goes without a progress event (on the CPU)
BLEND_SHARE = 0.25  # of free device memory the stitched output may take there


def run(ctx: TaskContext) -> TaskOutput:
    values = UPSCALE.read(ctx.params)  # the task contract: types, ranges, defaults
    raster = _input_raster(ctx)
    x, y, w, h = _region(values["region"], raster)
    check_refinable(values, raster.layout)  # before any model runs

    entry = ctx.models.entry(ctx.model_id, MODEL_KINDS, default=DEFAULT_UPSCALER)
    if entry.kind in SUPIR_KINDS:  # diffusion super-resolution: a different model, same task
        return _supir(ctx, entry, raster, (x, y, w, h), values)
    model = ctx.models.load(entry)
    scale = _scale(values["scale"], output_scale(model))
    tile = _tile(values["tile"])
    batch = tiles_per_batch(speed_of(ctx.models), str(model.device.type), values["batch"])
    out_h, out_w = round(h * scale), round(w * scale)
    passes = _pass_count(scale, model.scale)
    _check_size(ctx, out_h, out_w, h * model.scale**passes, w * model.scale**passes)

    # Only the region and the context its tiles can see are converted and run, on the
    # model's device from the raw pixels on: only the finished raster comes back.
    context = CONTEXT.get(str(model.architecture.id), DEFAULT_CONTEXT)
    x0, y0 = max(0, x - context), max(0, y - context)
    x1, y1 = min(raster.width, x + w + context), min(raster.height, y + h + context)
    # on the CPU the pass reuses the memory its layers free (page faults cost 2x there)
    cpu = model.device.type == "cpu"
    with reuse_freed_memory() if cpu else contextlib.nullcontext():
        pixels = raster_to_array(raster)[y0:y1, x0:x1]
        rgb, alpha = _to_model_space(pixels, raster.layout, model.device)
        at_edge = (y0 == 0, y1 == raster.height, x0 == 0, x1 == raster.width)

        # The first pass sees the region's real surroundings; later passes see only its output.
        work = Work()
        image = _model_pass(ctx, model, rgb, (x - x0, y - y0, w, h), at_edge, tile, context, batch,
                            work)
        for _ in range(passes - 1):
            whole = (0, 0, image.shape[2], image.shape[1])
            image = _model_pass(ctx, model, image, whole, (True,) * 4, tile, context, batch, work)
        image = _resize(image, out_h, out_w)
        if alpha is not None:
            alpha = _snap(_resize(alpha[:, y - y0 : y - y0 + h, x - x0 : x - x0 + w], out_h, out_w))

        layout = raster.layout
        result = array_to_raster(_from_model_space(image, alpha, layout), layout)
    # diffusion super-resolution: the upscale reworked in tiles by an SD 1.5 / SDXL model
    result, warnings = refine_upscaled(ctx, result, values)
    info: dict[str, Any] = {
        "scale": scale, "model": entry.name, "width": out_w, "height": out_h,
        "tiles": work.tiles, "work_ratio": round(work.window_pixels / (w * h), 3),
        "warnings": warnings,
    }
    if ctx.params.get("region") is not None:
        info["offset"] = [round(x * scale), round(y * scale)]
    return TaskOutput([result], info=info)


def _supir(ctx: TaskContext, entry: Any, raster: Raster, region: tuple[int, int, int, int],
           values: dict[str, Any]) -> TaskOutput:
    """The region enlarged and restored by a SUPIR model (core/diffusion/supir/)."""
    from sfumato.core.diffusion.supir.upscale import SCALE, supir_upscale

    x, y, w, h = region
    scale = _scale(values["scale"], SCALE)
    out_h, out_w = round(h * scale), round(w * scale)
    _check_size(ctx, out_h, out_w, h, w)
    pixels = raster_to_array(raster)[y : y + h, x : x + w]
    rgb, alpha = _to_model_space(pixels, raster.layout, torch.device("cpu"))
    image = supir_upscale(ctx, entry, rgb, out_h, out_w, values)
    if alpha is not None:
        alpha = _snap(_resize(alpha, out_h, out_w))
    result = array_to_raster(_from_model_space(image, alpha, raster.layout), raster.layout)
    info: dict[str, Any] = {"scale": scale, "model": entry.name, "width": out_w,
                            "height": out_h, "tiles": 1, "work_ratio": 1.0, "warnings": []}
    if ctx.params.get("region") is not None:
        info["offset"] = [round(x * scale), round(y * scale)]
    return TaskOutput([result], info=info)


# --- input and params -------------------------------------------------------------------


def _input_raster(ctx: TaskContext) -> Raster:
    if not ctx.rasters or ctx.rasters[0].is_empty:
        raise SfumatoError(ErrorCode.EMPTY_IMAGE, "upscale needs a non-empty image; send a layer")
    raster = ctx.rasters[0]
    if raster.layout not in LAYOUTS:
        names = ", ".join(layout.value for layout in LAYOUTS)
        raise SfumatoError(
            ErrorCode.UNSUPPORTED_LAYOUT,
            f"upscale cannot read {raster.layout.value} pixels; send one of {names}",
        )
    if raster.width * raster.height > ctx.limits.max_pixels:
        raise SfumatoError(
            ErrorCode.IMAGE_TOO_LARGE,
            f"a {raster.width}x{raster.height} image is over this daemon's limit of "
            f"{ctx.limits.max_pixels} pixels; upscale a selection instead",
        )
    return raster


def _region(value: Any, raster: Raster) -> tuple[int, int, int, int]:
    if value is None:
        return 0, 0, raster.width, raster.height
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 4
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise SfumatoError(
            ErrorCode.BAD_PARAMS, f"region must be [x, y, width, height] in pixels, got {value!r}"
        )
    x, y, w, h = value
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(raster.width, x + w), min(raster.height, y + h)
    if w <= 0 or h <= 0 or x1 <= x0 or y1 <= y0:
        raise SfumatoError(
            ErrorCode.EMPTY_SELECTION,
            f"the region {list(value)} covers no pixel of the {raster.width}x{raster.height} "
            "image; select part of the layer",
        )
    return x0, y0, x1 - x0, y1 - y0


def _scale(value: Any, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SfumatoError(ErrorCode.BAD_PARAMS, f"scale must be a number, got {value!r}")
    if value <= 0:
        raise SfumatoError(ErrorCode.BAD_PARAMS, f"scale must be above 0, got {value}")
    return float(value)


def _tile(value: Any) -> int | None:
    if value is None or value == 0:
        return None  # chosen from free memory
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SfumatoError(
            ErrorCode.BAD_PARAMS, f"tile must be a whole number of pixels (0 = auto), got {value!r}"
        )
    return max(MIN_TILE, value)


def _pass_count(scale: float, model_scale: int) -> int:
    # Enough passes to reach the target, then resize down; a 1x model runs once.
    if model_scale <= 1 or scale <= model_scale:
        return 1
    return math.ceil(math.log(scale) / math.log(model_scale) - 1e-9)


def _check_size(ctx: TaskContext, out_h: int, out_w: int, work_h: int, work_w: int) -> None:
    if out_h < 1 or out_w < 1:
        raise SfumatoError(
            ErrorCode.BAD_PARAMS, f"scale is too small: the result would be {out_w}x{out_h}"
        )
    largest = max(out_h * out_w, work_h * work_w)
    if largest > ctx.limits.max_output_pixels:
        raise SfumatoError(
            ErrorCode.IMAGE_TOO_LARGE,
            f"this upscale needs a {work_w}x{work_h} intermediate or {out_w}x{out_h} result, "
            f"over the limit of {ctx.limits.max_output_pixels} pixels; use a smaller scale "
            "or a selection",
        )


# --- colour -----------------------------------------------------------------------------


def _to_model_space(pixels: np.ndarray, layout: Layout, device: torch.device
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(3, H, W) sRGB-encoded float32 in [0, 1] on `device`, as the models were trained on,
    and alpha (1, H, W)."""
    unit = to_unit_tensor(pixels, device)
    if layout is Layout.GRAY8:
        return unit.expand(3, -1, -1), None
    rgb = unit[:3]
    if layout is Layout.RGBAF32:  # float rasters are linear light
        rgb = linear_to_srgb(rgb)
    return rgb, unit[3:]


def _from_model_space(rgb: torch.Tensor, alpha: torch.Tensor | None, layout: Layout
                      ) -> np.ndarray:
    """The model's output (3, H, W) and alpha (both this task's own temporaries, overwritten
    here) as (H, W, C) pixels of the layout's dtype."""
    dtype = np.dtype({1: np.uint8, 2: np.uint16, 4: np.float32}[layout.bytes_per_channel])
    if layout is Layout.GRAY8:
        return pack_unit([rgb.mean(dim=0, keepdim=True)], dtype)
    if layout is Layout.RGBAF32:
        rgb = srgb_to_linear(rgb)
    return pack_unit([rgb] if alpha is None else [rgb, alpha.to(rgb.device)], dtype)


# --- the model, tile by tile -------------------------------------------------------------


@dataclass
class Work:
    """What the network ran over, summed over passes: tiles and window pixels."""

    tiles: int = 0
    window_pixels: int = 0


def _model_pass(
    ctx: TaskContext,
    model: Any,
    image: torch.Tensor,
    core: tuple[int, int, int, int],
    at_edge: tuple[bool, bool, bool, bool],
    tile: int | None,
    context: int,
    batch: int = 1,
    work: Work | None = None,
) -> torch.Tensor:
    """The model's output for `core` (x, y, w, h) of `image` (3, H, W), shape (3, h*s, w*s).
    Sides of `image` that are the picture's own edges (top, bottom, left, right) get a
    reflected border; elsewhere `image` holds real neighbouring pixels. A given `tile` caps
    each core's side; without one, windows are sized from free memory (`_window_limit`)."""
    top, bottom, left, right = (PRE_PAD * edge for edge in at_edge)
    padded = reflect_pad(image, top, bottom, left, right)
    x, y, w, h = core
    padded_core = (x + left, y + top, w, h)
    height, width = padded.shape[1:]

    limit = None if tile else _window_limit(model, context, batch)
    while True:
        try:
            if tile:
                tiles = plan_tiles(height, width, tile, OVERLAP, context, padded_core)
            else:
                tiles = plan_least_work(height, width, OVERLAP, context, limit or 0,
                                        _max_window_side(model), padded_core)
            output = _run_tiles(ctx, model, padded, padded_core, tiles, batch)
            if work is not None:
                work.tiles += len(tiles)
                work.window_pixels += round(work_ratio(tiles, 1))
            return output
        except Exception as exc:  # only allocation failures are retried
            if not is_out_of_memory(exc):
                raise
            if model.device.type == "cuda":
                torch.cuda.empty_cache()
            if batch > 1:  # fewer tiles at once before smaller tiles
                batch = 1
                continue
            smallest = (MIN_TILE + 2 * context) ** 2
            if (tile or 0) <= MIN_TILE and (limit is None or limit <= smallest):
                raise SfumatoError(
                    ErrorCode.OUT_OF_MEMORY,
                    f"not even {MIN_TILE}px tiles fit in free memory; close other GPU programs "
                    "or use a smaller model",
                ) from None
            if tile:
                tile = max(MIN_TILE, min(tile, max(w, h)) // 2)
            else:  # half the largest window that was tried
                largest = max((t.y.hi - t.y.lo) * (t.x.hi - t.x.lo) for t in tiles)
                limit = max(smallest, min(limit or largest, largest) // 2)


def _run_tiles(
    ctx: TaskContext,
    model: Any,
    work: torch.Tensor,
    core: tuple[int, int, int, int],
    tiles: list[Tile],
    batch: int = 1,
) -> torch.Tensor:
    blender = Blender(core, channels=3, scale=model.scale, device=_blend_device(model, core))
    # progress (and cancel) inside a tile where a tile can take minutes: the CPU
    module = getattr(model, "model", None)
    progress = PieceProgress(len(tiles), lambda step, total: ctx.progress(step, total, NAME),
                             ctx.cancel.raise_if_cancelled, REPORT_S)
    hooks = LayerHooks(module, progress.layer) if hookable(module, model.device) else None
    progress.layers = hooks.layers if hooks is not None and hooks.layers else 1
    with hooks or contextlib.nullcontext():
        for group in _same_shape_batches(tiles, batch):
            ctx.cancel.raise_if_cancelled()
            windows = [work[:, p.y.lo : p.y.hi, p.x.lo : p.x.hi] for p in group]
            for piece, output in zip(group, _infer(model, windows), strict=True):
                blender.add(piece, output)
            progress.pieces_done(len(group))
    return blender.result()


def _blend_device(model: Any, core: tuple[int, int, int, int]) -> torch.device:
    """Tiles are stitched where the model runs unless the whole output would crowd it; then
    each tile's output comes to the CPU as it is made."""
    needed = Blender.nbytes(core, channels=3, scale=model.scale)
    if model.device.type != "cpu" and needed > BLEND_SHARE * free_bytes(model.device):
        return torch.device("cpu")
    return model.device


def _same_shape_batches(tiles: list[Tile], batch: int) -> list[list[Tile]]:
    """Consecutive tiles in groups of at most `batch` whose windows share one shape (edge
    tiles are often smaller), so each group stacks into one tensor."""
    groups: list[list[Tile]] = []
    for piece in tiles:
        shape = (piece.y.hi - piece.y.lo, piece.x.hi - piece.x.lo)
        last = groups[-1] if groups else None
        if (last is not None and len(last) < batch
                and (last[0].y.hi - last[0].y.lo, last[0].x.hi - last[0].x.lo) == shape):
            last.append(piece)
        else:
            groups.append([piece])
    return groups


def _infer(model: Any, windows: list[torch.Tensor]) -> list[torch.Tensor]:
    stacked = torch.stack(windows).to(device=model.device, dtype=model.dtype)
    with torch.inference_mode():
        output = model(stacked.contiguous(memory_format=input_memory_format(model)))
    return list(output)


def _window_limit(model: Any, context: int, batch: int) -> int:
    """The most input pixels one window may hold: a share of free memory over the
    architecture's measured peak per pixel (`batch` windows run at once), and never so many
    that an output-size feature map passes 2**31 elements."""
    element = torch.finfo(model.dtype).bits // 8
    per_pixel = upscaler_bytes_per_pixel(str(model.architecture.id), model.scale, element)
    budget = free_bytes(model.device) * MEMORY_SHARE.get(model.device.type, 0.35)
    by_memory = int(budget / (per_pixel * max(1, batch)))
    by_index = MAX_WINDOW_ELEMENTS // (OUTPUT_FEATURES * model.scale * model.scale)
    return max((MIN_TILE + 2 * context) ** 2, min(by_memory, by_index))


def _max_window_side(model: Any) -> int:
    return CPU_MAX_WINDOW_SIDE if model.device.type == "cpu" else 1 << 30


# --- resizing ---------------------------------------------------------------------------


def _resize(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Antialiased bicubic of (C, H, W) to exactly height x width (a no-op when already
    there)."""
    if tuple(image.shape[1:]) == (height, width):
        return image
    resized = torch.nn.functional.interpolate(
        image[None].float(), size=(height, width), mode="bicubic", align_corners=False,
        antialias=True,
    )
    return resized[0].clamp_(0.0, 1.0)


def _snap(alpha: torch.Tensor) -> torch.Tensor:
    # float rounding in the resize leaves 0.99999994 where the layer was opaque
    alpha = alpha.clone()
    alpha[alpha > 1.0 - 1e-5] = 1.0
    alpha[alpha < 1e-5] = 0.0
    return alpha
