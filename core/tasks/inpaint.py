"""Inpaint: repaint the selected part of a layer from a prompt, as a new layer above it.

Inputs: rasters[0] the layer (or a crop of it around the selection), rgba8/bgra8/rgba16;
rasters[1] the selection as gray8 of the same size.
Params: bridge/schema.py INPAINT (prompt, strength, steps, seed, grow, feather, context...);
controls and image_prompts (SD 1.5 and SDXL models: ControlNet, T2I-Adapter, IP-Adapter;
core/diffusion/guide_inputs.py has the wire form, their rasters follow the layer and mask).
Output: one RGBA layer per variant, covering the selection plus context; its alpha is the
feathered selection, so everything outside it stays as it was. info: a ResultInfo, its
offset in the sent raster's pixels.
"""

from __future__ import annotations

from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.schema import INPAINT, ResultInfo
from sfumato.core.diffusion.conditioning import load_guides
from sfumato.core.diffusion.guide_inputs import read_guides
from sfumato.core.diffusion.params import read_layer, read_mask, read_params
from sfumato.core.diffusion.pipeline_call import fit_prompts, geometry
from sfumato.core.diffusion.repaint import Prompting, layer_name, repaint
from sfumato.core.errors import SfumatoError
from sfumato.core.pixels.arrays import array_to_raster
from sfumato.core.pixels.masks import selection_bbox, selection_crop
from sfumato.core.task_api import TaskContext, TaskOutput

NAME = INPAINT.name
MODEL_KINDS = INPAINT.model_kinds


def run(ctx: TaskContext) -> TaskOutput:
    # 1. Check everything the request says before any model is loaded.
    params = read_params(ctx.params, INPAINT)
    layer, layout = read_layer(ctx)
    mask = read_mask(ctx, layer.shape[:2], required=True)
    guides = read_guides(ctx.params, ctx.rasters)
    selected = None if mask is None else selection_bbox(mask)
    if mask is None or selected is None:
        raise SfumatoError(
            ErrorCode.EMPTY_SELECTION,
            "nothing is selected; select the area to repaint first",
        )

    # 2. The model, loaded (or found in the cache) as an inpainting pipeline.
    entry = ctx.models.entry(ctx.model_id, MODEL_KINDS, default=None)
    pipe = ctx.models.load_pipeline(entry, NAME)
    model_size = geometry(pipe, params.resolution)
    guided = load_guides(ctx.models, pipe, guides)  # controls and image prompts, if any

    # 3. Work on the selection's box plus context only, never on the whole layer.
    crop, soft = selection_crop(
        mask, selected, params.grow, params.feather, params.context, model_size.multiple
    )

    # 4. Prompts as the model reads them; the artist is told what was cut or ignored.
    prompt, negative, warnings = fit_prompts(pipe, params.prompt, params.negative_prompt)

    # 5. One repaint per seed; each becomes a layer the crop's size.
    layers = repaint(
        pipe,
        layer[crop.slices],
        soft,
        params.seeds,
        Prompting(prompt, negative, params.steps, params.guidance, params.strength),
        model_size,
        keep_alpha=False,  # fill transparent holes too: that is what inpainting is for
        progress=ctx.progress,
        preview=ctx.preview,
        cancel=ctx.cancel,
        guidance=None if guided is None else guided.over(crop, layer.shape[:2]),
    )

    names = [layer_name("Inpaint", params.prompt, seed) for seed in params.seeds]
    return TaskOutput(
        rasters=[array_to_raster(pixels, layout) for pixels in layers],
        info=ResultInfo(offset=(crop.x, crop.y), names=tuple(names), seeds=params.seeds,
                        warnings=tuple(warnings) + guides.warnings,
                        model=entry.name).to_wire(),
    )
