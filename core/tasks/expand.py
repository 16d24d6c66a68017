"""Expand (outpaint): continue the picture into a new border around it, as a new layer.

Inputs: rasters[0] the picture, rgba8/bgra8/rgba16: the whole canvas, or only the strips
beside the sides that grow (the bridge sends what the task reaches: `EXPAND.reach`).
Params: bridge/schema.py EXPAND: left, top, right, bottom (pixels to add on each side, at
least one above 0), prompt, steps, seed, variants, feather (the seam's blend into the
picture), context (how much of the picture beside each new border the model sees)...
Output: one RGBA layer per variant covering the new border plus the seam and context, its
alpha 1 in the border and fading to 0 over `feather` pixels inside the old edge, so laid over
the source it blends the seam and leaves the rest of the picture as it was. The fill's colours
are matched to the picture's beside the seam. info: a ResultInfo whose offset is in the sent
raster's pixels; it is negative on a side that grew (the border lies before the raster).
"""

from __future__ import annotations

import numpy as np
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.schema import EXPAND, EXPAND_SIDES, ResultInfo
from sfumato.core.diffusion.params import read_layer, read_params
from sfumato.core.diffusion.pipeline_call import fit_prompts, geometry
from sfumato.core.diffusion.repaint import Prompting, layer_name, repaint
from sfumato.core.errors import SfumatoError
from sfumato.core.pixels.arrays import array_to_raster
from sfumato.core.pixels.masks import selection_bbox, selection_crop
from sfumato.core.task_api import TaskContext, TaskOutput

NAME = EXPAND.name
MODEL_KINDS = EXPAND.model_kinds


def run(ctx: TaskContext) -> TaskOutput:
    # 1. Check everything the request says before any model is loaded.
    params = read_params(ctx.params, EXPAND)
    left, top, right, bottom = (int(EXPAND.read(ctx.params)[side]) for side in EXPAND_SIDES)
    if not any((left, top, right, bottom)):
        raise SfumatoError(ErrorCode.BAD_PARAMS, "expand adds nothing: give at least one of "
                           "left, top, right, bottom in pixels")
    layer, layout = read_layer(ctx)
    height, width = layer.shape[:2]
    grown_w, grown_h = width + left + right, height + top + bottom
    if grown_w * grown_h > ctx.limits.max_pixels:
        raise SfumatoError(
            ErrorCode.IMAGE_TOO_LARGE,
            f"the expanded picture would be {grown_w}x{grown_h}, over this daemon's limit of "
            f"{ctx.limits.max_pixels} pixels; expand by less",
        )

    # 2. The model, loaded (or found in the cache) as an inpainting pipeline.
    entry = ctx.models.entry(ctx.model_id, MODEL_KINDS, default=None)
    pipe = ctx.models.load_pipeline(entry, NAME)
    model_size = geometry(pipe, params.resolution)

    # 3. The picture on the grown canvas; the new border is the selection to paint.
    canvas = np.zeros((grown_h, grown_w, 4), layer.dtype)
    canvas[top:top + height, left:left + width] = layer
    border = np.full((grown_h, grown_w), 255, np.uint8)
    border[top:top + height, left:left + width] = 0
    selected = selection_bbox(border)
    if selected is None:  # unreachable: some side grew
        raise SfumatoError(ErrorCode.INTERNAL, "expand found no border to paint")
    crop, soft = selection_crop(border, selected, 0, params.feather, params.context,
                                model_size.multiple)

    # 4. Prompts as the model reads them; the artist is told what was cut or ignored.
    prompt, negative, warnings = fit_prompts(pipe, params.prompt, params.negative_prompt)

    # 5. One fill per seed, its colours matched to the picture beside the seam.
    layers = repaint(
        pipe,
        canvas[crop.slices],
        soft,
        params.seeds,
        Prompting(prompt, negative, params.steps, params.guidance, 1.0),
        model_size,
        keep_alpha=False,  # the border is transparent: fill it
        progress=ctx.progress,
        preview=ctx.preview,
        cancel=ctx.cancel,
    )

    names = [layer_name("Expand", params.prompt, seed) for seed in params.seeds]
    return TaskOutput(
        rasters=[array_to_raster(pixels, layout) for pixels in layers],
        info=ResultInfo(offset=(crop.x - left, crop.y - top), names=tuple(names),
                        seeds=params.seeds, warnings=tuple(warnings),
                        model=entry.name).to_wire(),
    )
