"""Preprocess: the control image a preprocessor makes from a layer (canny edges, line art,
scribble, soft edges, tile; depth and pose with a depth or ViTPose model from the store), as a
new layer the artist can paint over and send back as a control's image.

Inputs: rasters[0] the layer, rgba8/bgra8/rgba16. Transparent pixels count as black.
Params: bridge/schema.py PREPROCESS: kind (required: canny, lineart, scribble, softedge, tile,
depth, pose).
Model: a depth-estimator id for depth, a pose-estimator id for pose (absent: the first
registered one).
Output: one opaque rgba8 layer the size of the input. info: a ResultInfo named "Control: KIND".
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.raster import Layout
from sfumato.bridge.schema import PREPROCESS, ResultInfo
from sfumato.core.diffusion.params import read_layer
from sfumato.core.errors import SfumatoError
from sfumato.core.pixels.arrays import array_to_raster
from sfumato.core.pixels.compose import from_float, to_float
from sfumato.core.preprocessors.catalogue import (
    NEEDS_MODEL,
    check_kind,
    missing_model_message,
    preprocess,
)
from sfumato.core.task_api import TaskContext, TaskOutput

NAME = PREPROCESS.name
MODEL_KINDS = frozenset(NEEDS_MODEL.values())


def run(ctx: TaskContext) -> TaskOutput:
    # 1. Check the request before any model is loaded.
    kind = check_kind(PREPROCESS.read(ctx.params)["kind"])
    layer, _ = read_layer(ctx)

    # 2. Over black, as control images are drawn: transparent means "nothing here".
    rgba = to_float(layer)
    rgb = from_float(rgba[..., :3] * rgba[..., 3:4], np.dtype(np.uint8))

    # 3. The preprocessor, with its model when it needs one.
    def load_model(model_kind: str) -> Any:
        if ctx.model_id is not None:
            return ctx.models.load_guide(ctx.models.entry(ctx.model_id, frozenset({model_kind}),
                                                          default=None))
        found = ctx.models.candidates(frozenset({model_kind}))
        if not found:
            raise SfumatoError(ErrorCode.UNKNOWN_MODEL, missing_model_message(kind))
        return ctx.models.load_guide(found[0])

    ctx.progress(0, 1, kind)
    control = preprocess(kind, rgb, load_model)
    ctx.progress(1, 1, kind)
    opaque = np.concatenate([control, np.full(control.shape[:2] + (1,), 255, np.uint8)], axis=2)
    return TaskOutput(
        rasters=[array_to_raster(opaque, Layout.RGBA8)],
        info=ResultInfo(names=(f"Control: {kind}",)).to_wire(),
    )
