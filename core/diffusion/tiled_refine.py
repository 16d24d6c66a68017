"""Diffusion super-resolution: rework an upscaled picture with an SD 1.5 / SDXL model at a low
strength, in overlapping tiles (the model's native size, the setting, or what free memory
holds), blended so no seam shows.

Each tile is repainted whole, as `refine` repaints a selection (transparent pixels seen as
grey, the same pipeline call, progress and cancel at every step), guided by a tile
ControlNet when one of the model's family is registered. Tiles are cross-faded over their
overlap with weights that fall linearly to zero at a tile's inner edges, so along a seam the
result is a convex blend of the two tiles: never further from a single pass than the tiles
themselves are. The generated colours are blended as floats and rounded once, to the layer's
8 or 16 bits; alpha stays exactly as upscaled.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sfumato.bridge.geometry import Rect
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.raster import Layout, Raster
from sfumato.bridge.schema import DIFFUSION_LAYOUTS, REFINE_UPSCALE_KINDS, SEED_LIMIT
from sfumato.core.device.memory import (
    free_bytes,
    is_out_of_memory,
    release_device_memory,
    reuse_freed_memory,
)
from sfumato.core.diffusion.conditioning import CropGuidance, LoadedGuides, load_guides
from sfumato.core.diffusion.guide_inputs import ControlRequest, Guides
from sfumato.core.diffusion.pipeline_call import Geometry, expected_steps, generate, geometry
from sfumato.core.diffusion.repaint import Prompting
from sfumato.core.diffusion.step_callback import StepProgress
from sfumato.core.errors import SfumatoError
from sfumato.core.pixels.arrays import array_to_raster, raster_to_array
from sfumato.core.pixels.compose import from_float, resize_rgb, rgb_over_grey, to_float
from sfumato.core.pixels.geometry import native_size
from sfumato.core.task_api import CancelToken, ModelProvider, TaskContext

OVERLAP_SHARE = 8  # tiles overlap by 1/8 of their side
MIN_TILE = 256  # smaller tiles see too little of the picture to refine it well
MEMORY_SHARE = {"cuda": 0.6, "cpu": 0.35}  # of free memory one tile's pass may take
# Feature maps one tile's pass holds at once, per pixel, in units of the VAE's widest
# full-resolution block (decoding: the upsampled map, a conv's output and a resnet's) and of
# the UNet's first block at 1/64 of the pixels (two batches under guidance, ~12 maps each).
# Estimates from the architectures, not yet measured on a GPU (bench/gpu_* has no refine).
VAE_MAPS, UNET_MAPS = 6, 24
log = logging.getLogger("sfumato.refine")
TILE_CONTROL_SCALE = 0.6
REFINABLE = DIFFUSION_LAYOUTS


@dataclass(frozen=True)
class RefineSettings:
    prompt: str
    strength: float
    steps: int
    seed: int
    tile: int | None  # a tile's side in output pixels; None: the model's native side


def plan_tiles(width: int, height: int, tile: int, overlap: int) -> list[Rect]:
    """Tiles of `tile` px (the image's side where it is smaller) covering the image, the
    fewest that overlap by at least `overlap`, spread evenly."""
    return [Rect(x, y, min(tile, width), min(tile, height))
            for y in _starts(height, tile, overlap) for x in _starts(width, tile, overlap)]


def blend_weights(tiles: list[Rect]) -> list[np.ndarray]:
    """Each tile's (h, w, 1) cross-fade weights: 1 inside, falling linearly towards 0 across
    the whole band it shares with each neighbour (an image border keeps full weight), so the
    weights of overlapping tiles trade off smoothly and a seam becomes a gentle ramp."""
    xs, ys = sorted({t.x for t in tiles}), sorted({t.y for t in tiles})
    return [(_ramp(ys, t.y, t.height)[:, None] * _ramp(xs, t.x, t.width)[None, :])
            [..., None].astype(np.float32) for t in tiles]


def blend_shares(tiles: list[Rect], height: int, width: int, scale: float) -> list[np.ndarray]:
    """Each tile's (h, w, 1) share of every pixel it covers, times `scale`: its cross-fade
    weight over the sum of the weights there, so the shares of the tiles meeting at a pixel
    add up to `scale`. Known before any tile runs, so the blend is one multiply-add a tile."""
    ramps = blend_weights(tiles)
    total = np.zeros((height, width, 1), np.float32)
    for rect, ramp in zip(tiles, ramps, strict=True):
        total[rect.slices] += ramp
    # float32: at most four tiles meet at a pixel, far inside float32's precision
    scale_over_total = np.float32(scale) / np.maximum(total, np.float32(1e-12))
    return [ramp * scale_over_total[rect.slices] for rect, ramp in zip(tiles, ramps, strict=True)]


def refine_tiled(pipe: Any, image: np.ndarray, settings: RefineSettings, *,
                 guides: LoadedGuides | None, progress: Callable[[int, int, str], None],
                 cancel: CancelToken) -> np.ndarray:
    """`image` ((H, W, 4) uint8 or uint16, straight alpha) reworked tile by tile; same size,
    dtype and alpha."""
    if settings.strength <= 0.0:
        return image  # strength 0 keeps the upscale exactly
    height, width = image.shape[:2]
    model = geometry(pipe)
    side = settings.tile or int(math.isqrt(model.native_pixels))
    side = max(model.multiple, side // model.multiple * model.multiple)
    overlap = max(model.multiple, side // OVERLAP_SHARE)
    tiles = plan_tiles(width, height, side, overlap)
    per_tile = expected_steps(settings.steps, settings.strength)
    prompting = Prompting(settings.prompt, "", settings.steps, None, settings.strength)
    limit = np.iinfo(image.dtype).max
    progress(0, len(tiles) * per_tile, f"refine in {len(tiles)} tiles of {side}²")
    # the generated tiles' float colours, weighted, summed straight into the picture's scale
    total = np.zeros((height, width, 3), np.float32)
    for index, (rect, share) in enumerate(zip(tiles, blend_shares(tiles, height, width, limit),
                                              strict=True)):
        def report(step: int, _: int, stage: str, index: int = index) -> None:
            progress(index * per_tile + step, len(tiles) * per_tile,
                     f"refine tile {index + 1}/{len(tiles)}")

        generated = refine_tile(
            pipe, image[rect.slices], settings.seed + index, prompting,
            _tile_geometry(rect, model), progress=report, cancel=cancel,
            guidance=None if guides is None else guides.over(rect, (height, width)))
        total[rect.slices] += np.multiply(generated, share, out=generated)
    refined = np.empty_like(image)
    refined[..., :3] = np.clip(np.rint(total, out=total), 0, limit, out=total)
    refined[..., 3] = image[..., 3]  # alpha exactly as upscaled
    return refined


def refine_tile(pipe: Any, crop: np.ndarray, seed: int, prompting: Prompting,
                model: Geometry, *, progress: Callable[[int, int, str], None],
                cancel: CancelToken, guidance: CropGuidance | None) -> np.ndarray:
    """One tile ((h, w, 4) uint8 or uint16 RGBA) repainted whole at `prompting`'s strength:
    its new colours as float32 (h, w, 3) in [0, 1]. What `repaint` does for a whole-tile
    selection that keeps its alpha, without the result layer it would compose: the blend
    takes the colours as they come."""
    height, width = crop.shape[:2]
    size = native_size(width, height, model.native_pixels, model.multiple)
    limit = np.iinfo(crop.dtype).max
    if crop.dtype == np.uint8 and (crop[..., 3] == limit).all():
        pixels = crop[..., :3]  # opaque 8-bit: the model's own input, no round trip
    else:  # transparent pixels go in as mid grey; 16-bit goes in as the 8 bits models read
        pixels = from_float(rgb_over_grey(crop), np.dtype(np.uint8))
    if size != (width, height):
        pixels = resize_rgb(pixels, size)
    cancel.raise_if_cancelled()
    callback = StepProgress(progress, cancel,
                            total=expected_steps(prompting.steps, prompting.strength))
    guided = nullcontext(None) if guidance is None else guidance.applied(
        pipe, to_float(pixels), expected_steps(prompting.steps, prompting.strength))
    with guided as runs:
        if runs is not None:
            runs.next_run()  # the control window counts this tile's steps from 0
        generated = generate(
            pipe if runs is None or runs.pipe is None else runs.pipe, pixels, None,
            prompt=prompting.prompt, negative_prompt=prompting.negative_prompt,
            steps=prompting.steps, guidance=prompting.guidance, strength=prompting.strength,
            seed=seed, callback=callback, extra=None if runs is None else runs.kwargs)
    if size != (width, height):
        generated = resize_rgb(generated, (width, height))
    return generated


def refine_fitting(pipe: Any, image: np.ndarray, settings: RefineSettings, *,
                   guides: LoadedGuides | None, progress: Callable[[int, int, str], None],
                   cancel: CancelToken) -> tuple[np.ndarray, int | None]:
    """`refine_tiled` in tiles that fit the device's free memory: the side is chosen from it
    before the first tile (`fitting_side`), and a pass that still runs out of it starts again
    in tiles a quarter smaller (down to MIN_TILE), so a big layer on a small GPU still
    refines instead of failing. Returns the picture and the smaller side it took, None when
    the first plan fitted."""
    device = _device_of(pipe)
    side, reason = fitting_side(pipe, settings.tile, device)
    log.info("refine tile %d² (%s)", side, reason)
    progress(0, 0, f"refine tile {side}² ({reason})")
    shrunk = None
    # on the CPU the pass reuses the memory the pipeline frees, as the upscale's own pass
    # does: else its temporaries are fresh pages each step, and what else the process holds
    # between tiles (this picture's sums) decides how many (bench/tiled_refine.py)
    with reuse_freed_memory() if device.type == "cpu" else nullcontext():
        while True:
            try:
                return refine_tiled(pipe, image, replace(settings, tile=side), guides=guides,
                                    progress=progress, cancel=cancel), shrunk
            except Exception as exc:
                smaller = side * 3 // 4
                if not is_out_of_memory(exc) or smaller < MIN_TILE:
                    raise
            release_device_memory()  # out of the except block: the failed pass's tensors go
            side = shrunk = smaller
            progress(0, 0, f"out of memory: refining again in {side}² tiles")


def fitting_side(pipe: Any, setting: int | None, device: Any) -> tuple[int, str]:
    """The tile side for this pipeline on `device` now, and why: the setting (else the
    model's native side) as the largest, smaller where the device's free memory holds no
    tile that big (a share of it over `tile_bytes`), never below MIN_TILE for that reason
    alone."""
    model = geometry(pipe)
    cap = setting or int(math.isqrt(model.native_pixels))
    free = free_bytes(device)
    budget = free * MEMORY_SHARE.get(device.type, MEMORY_SHARE["cpu"])
    side = cap // model.multiple * model.multiple
    while side > MIN_TILE and tile_bytes(pipe, side) > budget:
        side -= model.multiple
    side = max(model.multiple, side)
    why = "the setting" if setting else "the model's native size"
    if side < cap // model.multiple * model.multiple:
        why = f"{free / 2**30:.1f} GiB free on {device.type}"
    return side, why


def tile_bytes(pipe: Any, side: int) -> float:
    """Estimated peak bytes one refine pass over a side² tile takes beyond the loaded
    weights: the VAE's full-resolution maps (in its working precision: SDXL's VAE upcasts to
    float32) and the UNet's at latent size."""
    vae, unet = getattr(pipe, "vae", None), getattr(pipe, "unet", None)
    vae_width = _first_width(vae, 128)
    unet_width = _first_width(unet, 320)
    unet_element = _element_bytes(unet)
    vae_element = 4 if getattr(getattr(vae, "config", None), "force_upcast", False) \
        else _element_bytes(vae)
    per_pixel = VAE_MAPS * vae_width * vae_element + UNET_MAPS * unet_width * unet_element / 64
    return per_pixel * side * side


def _first_width(module: Any, default: int) -> int:
    widths = getattr(getattr(module, "config", None), "block_out_channels", None)
    return int(widths[0]) if widths else default


def _element_bytes(module: Any) -> int:
    import torch

    dtype = getattr(module, "dtype", torch.float32)
    return int(torch.finfo(dtype).bits // 8) if dtype.is_floating_point else 4


def _device_of(pipe: Any) -> Any:
    """Where the pipeline runs (an offloaded one keeps its weights on the CPU between
    calls but runs on the GPU)."""
    import torch

    if not torch.cuda.is_available():  # the CPU (or MPS, which shares the system's memory);
        return torch.device("cpu")  # _execution_device walks every module's parameters
    device = getattr(pipe, "_execution_device", None) or getattr(pipe, "device", None)
    return torch.device(device if device is not None else "cpu")


def tile_guides(models: ModelProvider, pipe: Any) -> tuple[LoadedGuides | None, list[str]]:
    """A tile ControlNet of the model's family when one is registered (it keeps the refine
    on the upscale's shapes), else none, with a warning saying what it would add."""
    registered = [e for e in models.candidates(frozenset({"controlnet"})) if "tile" in e.name]
    if not registered:
        return None, []
    request = Guides(controls=(ControlRequest("tile", None, None, TILE_CONTROL_SCALE, 0.0,
                                              1.0),))
    try:
        return load_guides(models, pipe, request), []
    except SfumatoError as exc:  # e.g. only an SDXL tile ControlNet beside an SD 1.5 model
        return None, [f"the refine ran without a tile ControlNet: {exc.message}"]


def _tile_geometry(rect: Rect, model: Geometry) -> Geometry:
    # the tile itself is the working size: no resize on the way in or out
    return Geometry(native_pixels=rect.width * rect.height, multiple=model.multiple)


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    step = (length - tile) / (count - 1)
    return [round(i * step) for i in range(count)]


def _ramp(starts: list[int], start: int, length: int) -> np.ndarray:
    """Weights along one axis for the tile at `start` among tiles at `starts` (all `length`
    long but the last, which may be cut by the image): linear over each shared band."""
    ramp = np.ones(length, np.float64)
    index = starts.index(start)
    if index > 0:
        band = starts[index - 1] + length - start  # shared with the previous tile
        ramp[:band] = np.minimum(ramp[:band], (np.arange(band) + 0.5) / band)
    if index < len(starts) - 1:
        band = start + length - starts[index + 1]  # shared with the next tile
        ramp[length - band:] = np.minimum(ramp[length - band:],
                                          ((np.arange(band) + 0.5) / band)[::-1])
    return ramp


# --- as the upscale task uses it ---------------------------------------------------------


def check_refinable(values: dict[str, Any], layout: Layout) -> None:
    """Before any model runs: the refine works on what the diffusion models read."""
    if values["refine"] and values["refine_strength"] > 0 and layout not in REFINABLE:
        raise SfumatoError(
            ErrorCode.UNSUPPORTED_LAYOUT,
            f"the diffusion refine works on 8- and 16-bit RGBA layers, not {layout.value}; "
            "switch the image to 8- or 16-bit integer RGB, or upscale without --refine",
        )


def refine_upscaled(ctx: TaskContext, raster: Raster, values: dict[str, Any],
                    ) -> tuple[Raster, list[str]]:
    """The upscale `raster` reworked by the `refine` model named in `values` (the task
    contract's upscale params), and what the artist should know about it."""
    if not values["refine"] or values["refine_strength"] <= 0:
        return raster, []
    entry = ctx.models.entry(values["refine"], REFINE_UPSCALE_KINDS, default=None)
    pipe = ctx.models.load_pipeline(entry, "refine")
    guides, warnings = tile_guides(ctx.models, pipe)
    seed = values["refine_seed"]
    seed = secrets.randbelow(SEED_LIMIT) if seed is None else seed
    settings = RefineSettings(values["refine_prompt"].strip(), values["refine_strength"],
                              values["refine_steps"], seed, values["refine_tile"])
    image, shrunk = refine_fitting(pipe, raster_to_array(raster), settings, guides=guides,
                                   progress=ctx.progress, cancel=ctx.cancel)
    if shrunk is not None:
        warnings.append(f"the device ran out of memory, so the refine ran in {shrunk}² "
                        "tiles; close other GPU programs or set a smaller refine tile")
    return array_to_raster(image, raster.layout), warnings
