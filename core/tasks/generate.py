"""Generate: a new picture from a prompt (text to image), into the selection or over the whole
sent area, as new layers above the source.

Inputs: rasters[0] the area to paint (the layer's pixels over the selection's box plus what
the task reaches, or over the whole canvas), rgba8/bgra8/rgba16: its size is the result's size
and "auto" controls are made from it, but its pixels never show through; rasters[1], optional,
the selection as gray8 of the same size (absent: the whole area).
Params: bridge/schema.py GENERATE (prompt, steps, seed, variants, grow, feather, resolution);
controls and image_prompts as inpaint takes them.
Output: one RGBA layer per variant over the selection's box (grown and feathered) or the whole
area, generated at the model's native resolution with the box's aspect ratio and scaled to it;
its alpha is the feathered selection (opaque with no selection). info: a ResultInfo, its
offset in the sent raster's pixels.
"""

from __future__ import annotations

import numpy as np
from sfumato.bridge.geometry import Rect
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.schema import GENERATE, ResultInfo
from sfumato.core.diffusion.conditioning import load_guides
from sfumato.core.diffusion.guide_inputs import read_guides
from sfumato.core.diffusion.params import read_layer, read_mask, read_params
from sfumato.core.diffusion.pipeline_call import fit_prompts, geometry
from sfumato.core.diffusion.repaint import Prompting, layer_name, repaint
from sfumato.core.errors import SfumatoError
from sfumato.core.pixels.arrays import array_to_raster
from sfumato.core.pixels.masks import selection_bbox, selection_crop
from sfumato.core.task_api import TaskContext, TaskOutput

NAME = GENERATE.name
MODEL_KINDS = GENERATE.model_kinds


def run(ctx: TaskContext) -> TaskOutput:
    # 1. Check everything the request says before any model is loaded.
    params = read_params(ctx.params, GENERATE)
    layer, layout = read_layer(ctx)
    mask = read_mask(ctx, layer.shape[:2], required=False)
    guides = read_guides(ctx.params, ctx.rasters)
    selected = None if mask is None else selection_bbox(mask)
    if mask is not None and selected is None:
        raise SfumatoError(
            ErrorCode.EMPTY_SELECTION,
            "the selection is empty; select where to paint, or send no mask for the whole "
            "area",
        )

    # 2. The model, loaded (or found in the cache) as a text-to-image pipeline.
    entry = ctx.models.entry(ctx.model_id, MODEL_KINDS, default=None)
    pipe = ctx.models.load_pipeline(entry, NAME)
    model_size = geometry(pipe, params.resolution)
    guided = load_guides(ctx.models, pipe, guides)  # controls and image prompts, if any

    # 3. The selection's box (grown and feathered), or the whole area: its aspect ratio is
    # the picture's, at the model's native resolution.
    if mask is None or selected is None:
        height, width = layer.shape[:2]
        crop, soft = Rect(0, 0, width, height), np.ones((height, width), np.float32)
    else:
        crop, soft = selection_crop(
            mask, selected, params.grow, params.feather, 0, model_size.multiple
        )

    # 4. Prompts as the model reads them; the artist is told what was cut or ignored.
    prompt, negative, warnings = fit_prompts(pipe, params.prompt, params.negative_prompt)

    # 5. One picture per seed; each becomes a layer the crop's size.
    layers = repaint(
        pipe,
        layer[crop.slices],
        soft,
        params.seeds,
        Prompting(prompt, negative, params.steps, params.guidance, 1.0),
        model_size,
        keep_alpha=False,
        progress=ctx.progress,
        preview=ctx.preview,
        cancel=ctx.cancel,
        guidance=None if guided is None else guided.over(crop, layer.shape[:2]),
        match_colour=False,  # a new picture: its own colours
    )

    names = [layer_name("Generate", params.prompt, seed) for seed in params.seeds]
    return TaskOutput(
        rasters=[array_to_raster(pixels, layout) for pixels in layers],
        info=ResultInfo(offset=(crop.x, crop.y), names=tuple(names), seeds=params.seeds,
                        warnings=tuple(warnings) + guides.warnings,
                        model=entry.name).to_wire(),
    )
