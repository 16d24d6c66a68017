"""Edit by instruction: change a layer (or the selected part of it) as a sentence says ("make it
night", "remove the hat"), with an instruction-following model, as a new layer above it.

Inputs: rasters[0] the layer (or a crop of it around the selection), rgba8/bgra8/rgba16;
rasters[1], optional, the selection as gray8 of the same size (absent: the whole layer).
Params: bridge/schema.py EDIT: instruction (what to change; required in practice: an empty
one is refused), negative_prompt, steps, guidance, image_guidance (InstructPix2Pix only),
seed, variants, grow, feather, context, resolution.
Models: InstructPix2Pix (SD 1.5, SDXL), FLUX.1 Kontext, Qwen-Image-Edit (and Plus), FLUX.2
Klein (the picture as its reference image).
Output: one RGBA layer per variant over the selection's box plus context (or the whole
layer), pixel-aligned with the source: the crop goes to the model at the model's multiple and
comes back resized to exactly the crop's grid (no shift, no zoom). Its alpha is the feathered
selection times the layer's own alpha, so pixels outside the selection stay as they were and
an edited cut-out keeps its outline. info: a ResultInfo, its offset in the sent raster's
pixels.
"""

from __future__ import annotations

import numpy as np
from sfumato.bridge.geometry import Rect
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.schema import EDIT, ResultInfo
from sfumato.core.diffusion.params import read_layer, read_mask, read_params
from sfumato.core.diffusion.pipeline_call import (
    edit_options,
    fit_prompts,
    fixed_geometry,
    geometry,
)
from sfumato.core.diffusion.repaint import Prompting, layer_name, repaint
from sfumato.core.errors import SfumatoError
from sfumato.core.pixels.arrays import array_to_raster
from sfumato.core.pixels.masks import selection_bbox, selection_crop
from sfumato.core.task_api import TaskContext, TaskOutput

NAME = EDIT.name
MODEL_KINDS = EDIT.model_kinds


def run(ctx: TaskContext) -> TaskOutput:
    # 1. Check everything the request says before any model is loaded.
    params = read_params(ctx.params, EDIT)
    image_guidance = EDIT.read(ctx.params)["image_guidance"]
    if not params.prompt:
        raise SfumatoError(ErrorCode.BAD_PARAMS, "say what to change in the instruction, e.g. "
                           "\"make it night\" or \"remove the hat\"")
    layer, layout = read_layer(ctx)
    mask = read_mask(ctx, layer.shape[:2], required=False)
    selected = None if mask is None else selection_bbox(mask)
    if mask is not None and selected is None:
        raise SfumatoError(
            ErrorCode.EMPTY_SELECTION,
            "the selection is empty; select the part to edit, or send no mask for the whole "
            "layer",
        )

    # 2. The model, loaded (or found in the cache) as an edit pipeline; a model of another
    # kind is refused naming the kinds that edit. Over a selection, Kontext and Qwen-Image-Edit
    # run their inpaint variants: only the mask is repainted, the latents outside it kept.
    entry = ctx.models.entry(ctx.model_id, MODEL_KINDS, default=None)
    pipe = ctx.models.load_pipeline(entry, NAME, masked=mask is not None)
    model_size = geometry(pipe, params.resolution)
    sized = [] if params.resolution is None or not fixed_geometry(pipe) else [
        f"{entry.name} edits at its own size (about 1 MP); the resolution was not used"]

    # 3. The selection's box plus context, or the whole layer when there is no selection.
    if mask is None or selected is None:
        height, width = layer.shape[:2]
        crop, soft = Rect(0, 0, width, height), np.ones((height, width), np.float32)
    else:
        crop, soft = selection_crop(
            mask, selected, params.grow, params.feather, params.context, model_size.multiple
        )

    # 4. The instruction as the model reads it, and the family's own guidance settings.
    prompt, negative, warnings = fit_prompts(pipe, params.prompt, params.negative_prompt)
    extra, ignored = edit_options(pipe, params.guidance, image_guidance, negative)

    # 5. One edit per seed, at the model's size and back onto exactly the crop's pixels.
    layers = repaint(
        pipe,
        layer[crop.slices],
        soft,
        params.seeds,
        Prompting(prompt, negative, params.steps, params.guidance, 1.0),
        model_size,
        keep_alpha=True,  # an edited cut-out keeps its outline
        progress=ctx.progress,
        preview=ctx.preview,
        cancel=ctx.cancel,
        match_colour=False,  # "make it night" changes the colours on purpose
        extra=extra,
    )

    names = [layer_name("Edit", params.prompt, seed) for seed in params.seeds]
    return TaskOutput(
        rasters=[array_to_raster(pixels, layout) for pixels in layers],
        info=ResultInfo(offset=(crop.x, crop.y), names=tuple(names), seeds=params.seeds,
                        warnings=tuple(sized + warnings + ignored),
                        model=entry.name).to_wire(),
    )
