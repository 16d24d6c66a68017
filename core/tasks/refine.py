"""Refine: redraw a layer (or the selected part of it) guided by a prompt, keeping as much of
it as `strength` says, as a new layer above it.

Inputs: rasters[0] the layer (or a crop of it around the selection), rgba8/bgra8/rgba16;
rasters[1], optional, the selection as gray8 of the same size (absent: the whole layer).
Params: bridge/schema.py REFINE: strength (required, 0 to 1; 0 returns the layer unchanged
without running a model), steps (the schedule, of which strength x steps run), prompt, seed,
grow, feather, context...; controls and image_prompts (SD 1.5 and SDXL models: ControlNet,
T2I-Adapter, IP-Adapter; core/diffusion/guide_inputs.py has the wire form, their rasters
follow the layer and mask).
Output: one RGBA layer per variant; its alpha is the feathered selection times the layer's own
alpha, so a refined cut-out keeps its shape. info: a ResultInfo, its offset in the sent
raster's pixels.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from sfumato.bridge.geometry import Rect
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.schema import REFINE, ResultInfo
from sfumato.core.diffusion.conditioning import load_guides
from sfumato.core.diffusion.guide_inputs import read_guides
from sfumato.core.diffusion.params import read_layer, read_mask, read_params
from sfumato.core.diffusion.pipeline_call import fit_prompts, geometry
from sfumato.core.diffusion.repaint import Prompting, layer_name, repaint
from sfumato.core.errors import SfumatoError
from sfumato.core.pixels.arrays import array_to_raster
from sfumato.core.pixels.masks import selection_bbox, selection_crop
from sfumato.core.task_api import TaskContext, TaskOutput

NAME = REFINE.name
MODEL_KINDS = REFINE.model_kinds


def run(ctx: TaskContext) -> TaskOutput:
    # 1. Check everything the request says before any model is loaded.
    params = read_params(ctx.params, REFINE)
    layer, layout = read_layer(ctx)
    mask = read_mask(ctx, layer.shape[:2], required=False)
    guides = read_guides(ctx.params, ctx.rasters)
    selected = None if mask is None else selection_bbox(mask)
    if mask is not None and selected is None:
        raise SfumatoError(
            ErrorCode.EMPTY_SELECTION,
            "the selection is empty; select the area to refine, or send no mask for the "
            "whole layer",
        )
    entry = ctx.models.entry(ctx.model_id, MODEL_KINDS, default=None)
    names = tuple(layer_name("Refine", params.prompt, seed) for seed in params.seeds)
    info = ResultInfo(names=names, seeds=params.seeds, model=entry.name)

    # 2. Strength 0 changes nothing: hand the pixels back as they came, no model run.
    if params.strength == 0.0:
        unchanged = [array_to_raster(layer, layout) for _ in params.seeds]
        return TaskOutput(rasters=unchanged, info=info.to_wire())

    # 3. The model, loaded (or found in the cache) as a refining pipeline.
    pipe = ctx.models.load_pipeline(entry, NAME)
    model_size = geometry(pipe, params.resolution)
    guided = load_guides(ctx.models, pipe, guides)  # controls and image prompts, if any

    # 4. The selection's box plus context, or the whole layer when there is no selection.
    if mask is None or selected is None:
        height, width = layer.shape[:2]
        crop, soft = Rect(0, 0, width, height), np.ones((height, width), np.float32)
    else:
        crop, soft = selection_crop(
            mask, selected, params.grow, params.feather, params.context, model_size.multiple
        )

    # 5. Prompts as the model reads them; the artist is told what was cut or ignored.
    prompt, negative, warnings = fit_prompts(pipe, params.prompt, params.negative_prompt)

    # 6. One repaint per seed; each becomes a layer the crop's size.
    layers = repaint(
        pipe,
        layer[crop.slices],
        soft,
        params.seeds,
        Prompting(prompt, negative, params.steps, params.guidance, params.strength),
        model_size,
        keep_alpha=True,  # a refined cut-out keeps its outline
        progress=ctx.progress,
        preview=ctx.preview,
        cancel=ctx.cancel,
        guidance=None if guided is None else guided.over(crop, layer.shape[:2]),
    )
    return TaskOutput(
        rasters=[array_to_raster(pixels, layout) for pixels in layers],
        info=replace(info, offset=(crop.x, crop.y),
                     warnings=tuple(warnings) + guides.warnings).to_wire(),
    )
