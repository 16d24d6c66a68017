"""Remove: the selected object is gone and the background continues, as a new layer above the
layer. No prompt needed.

Inputs: rasters[0] the layer (or a crop of it around the selection), rgba8/bgra8/rgba16;
rasters[1] the selection as gray8 of the same size.
Params: bridge/schema.py REMOVE (grow, feather, context, resolution; for diffusion models also
refine_strength, fill_model, prompt, steps, seed).
Engines, chosen by the model's kind:
- LaMa or MAT (spandrel): one pass over the selection's crop plus context at the model's
  working size. With no model named, the first registered LaMa (else MAT) runs; with none
  registered, OpenCV's Telea fill, and a warning says what to add.
- an inpainting diffusion model (SDXL, SD 1.5, FLUX Fill): the LaMa/MAT (or Telea) fill is its
  starting image, refined at `refine_strength` with a neutral prompt and a negative prompt
  for objects and people, so nothing new is invented in the hole.
Output: one RGBA layer covering the crop; its alpha is the feathered selection, so everything
outside it stays as it was. info: a ResultInfo, its offset in the sent raster's pixels.
"""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.schema import FILL_KINDS, REMOVE, REMOVE_PROMPT, SEED_LIMIT, ResultInfo
from sfumato.core.diffusion.params import read_layer, read_mask
from sfumato.core.diffusion.pipeline_call import fit_prompts, geometry, is_flux
from sfumato.core.diffusion.repaint import Prompting, repaint
from sfumato.core.errors import SfumatoError
from sfumato.core.models.fill_run import FILL_MULTIPLE, run_fill
from sfumato.core.models.registry import ModelEntry, ModelKind
from sfumato.core.pixels.arrays import array_to_raster
from sfumato.core.pixels.compose import compose_result_layer, from_float, rgb_over_grey
from sfumato.core.pixels.masks import selection_bbox, selection_crop
from sfumato.core.pixels.telea import telea_fill
from sfumato.core.task_api import TaskContext, TaskOutput

NAME = REMOVE.name
MODEL_KINDS = REMOVE.model_kinds
# what the diffusion refine must not paint into the hole
NEGATIVE_PROMPT = ("object, person, people, face, animal, text, letters, watermark, logo, "
                   "signature, frame, border, duplicate, artifacts, blurry")
NO_FILL_MODEL = ("no LaMa or MAT model is registered, so the selection was filled with "
                 "OpenCV's Telea fill (smooth, without texture); for a better fill get "
                 "big-lama.safetensors and run `sfumato models add lama PATH`")


def run(ctx: TaskContext) -> TaskOutput:
    # 1. Check everything the request says before any model is loaded.
    values = REMOVE.read(ctx.params)
    layer, layout = read_layer(ctx)
    mask = read_mask(ctx, layer.shape[:2], required=True)
    selected = None if mask is None else selection_bbox(mask)
    if mask is None or selected is None:
        raise SfumatoError(ErrorCode.EMPTY_SELECTION,
                           "nothing is selected; select the object to remove first")

    # 2. The engine: the model named, else a registered LaMa or MAT, else Telea (None).
    entry = _fill_entry(ctx, None) if ctx.model_id is None else \
        ctx.models.entry(ctx.model_id, MODEL_KINDS, default=None)
    diffusing = entry is not None and entry.kind not in FILL_KINDS
    refining = diffusing and values["refine_strength"] > 0  # 0: the fill alone, no model run
    pipe = ctx.models.load_pipeline(entry, "inpaint") if refining and entry else None
    model_size = None if pipe is None else geometry(pipe, values["resolution"])

    # 3. Work on the selection's box plus context only, never on the whole layer.
    multiple = FILL_MULTIPLE if model_size is None else model_size.multiple
    crop, soft = selection_crop(mask, selected, values["grow"], values["feather"],
                                values["context"], multiple)
    pixels = layer[crop.slices]
    hole = soft > 0  # the feather band too: the layer's alpha blends fill and source there

    # 4. The fill: LaMa / MAT / Telea. Without a diffusion model it is the result.
    fill_entry = _fill_entry(ctx, values["fill_model"] or None) if diffusing else entry
    warnings = [] if fill_entry is not None else [NO_FILL_MODEL]
    ctx.cancel.raise_if_cancelled()
    ctx.progress(0, 1, "fill")
    filled = _fill(ctx, fill_entry, pixels, hole, None if diffusing else values["resolution"])
    ctx.progress(1, 1, "fill")
    fill_name = "Telea" if fill_entry is None else fill_entry.name
    if pipe is None or model_size is None or entry is None:
        result = compose_result_layer(filled, pixels, soft, keep_alpha=False)
        info = ResultInfo(offset=(crop.x, crop.y), names=(f"Remove ({fill_name})",),
                          warnings=tuple(warnings), model=fill_name)
        return TaskOutput([array_to_raster(result, layout)], info.to_wire())

    # 5. Diffusion: the fill is the starting image, refined without inventing objects.
    seed = values["seed"]
    seeds = (secrets.randbelow(SEED_LIMIT) if seed is None else int(seed),)
    prompt, negative, cut = fit_prompts(pipe, values["prompt"].strip() or REMOVE_PROMPT,
                                        "" if is_flux(pipe) else NEGATIVE_PROMPT)
    start = _with_fill(pixels, filled, hole)
    (result,) = repaint(
        pipe, start, soft, seeds,
        Prompting(prompt, negative, values["steps"], None, values["refine_strength"]),
        model_size, keep_alpha=False, progress=ctx.progress, preview=ctx.preview,
        cancel=ctx.cancel,
    )
    info = ResultInfo(offset=(crop.x, crop.y), names=(f"Remove ({entry.name}, seed "
                                                      f"{seeds[0]})",),
                      seeds=seeds, warnings=tuple(warnings + cut), model=entry.name)
    return TaskOutput([array_to_raster(result, layout)], info.to_wire())


def _fill_entry(ctx: TaskContext, model_id: str | None) -> ModelEntry | None:
    """The LaMa or MAT entry named, else the first registered LaMa (then MAT); None: Telea."""
    if model_id is not None:
        return ctx.models.entry(model_id, FILL_KINDS, default=None)
    found = ctx.models.candidates(FILL_KINDS)
    found.sort(key=lambda e: (e.kind != ModelKind.LAMA.value, e.name))
    return found[0] if found else None


def _fill(ctx: TaskContext, entry: ModelEntry | None, pixels: np.ndarray, hole: np.ndarray,
          side: int | None) -> np.ndarray:
    """Float RGB of the crop, its hole filled."""
    rgb = rgb_over_grey(pixels)
    if entry is None:
        return telea_fill(rgb, hole)
    model: Any = ctx.models.load(entry)
    return run_fill(model, rgb, hole, side, ctx.device)


def _with_fill(pixels: np.ndarray, filled: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The crop with the fill in its hole, opaque there (so a transparent hole is not grey)."""
    start = pixels.copy()
    start[..., :3] = np.where(hole[..., None], from_float(filled, pixels.dtype), pixels[..., :3])
    opaque = np.iinfo(pixels.dtype).max
    start[..., 3] = np.where(hole, opaque, pixels[..., 3])
    return start
