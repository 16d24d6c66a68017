"""Segment: a mask of the object at points, in a box or named in words; with no prompt, the
main subject (the largest object in a box of the whole layer). "Select subject", the hosts'
selection tools and `sfumato cutout` all run this.

Inputs: rasters[0] the layer (or a crop of it), rgba8/bgra8/rgba16; rasters[1], optional, a
rough selection as gray8 of the same size: the model then sees only its box plus `context`
pixels, and with no other prompt the box is the prompt ("the object in the selection").
Params: bridge/schema.py SEGMENT (text, soft, matting, context) and two lists the task checks:
`points` [[x, y, 1 include | 0 exclude], ...] and `box` [x, y, width, height], both in the
sent raster's pixels.
Models: a segmenter (SAM, SAM 2.1, SAM 3: only SAM 3 takes words); with `soft`, a matting
model (VitMatte) turns the edge into a soft mask. With no segmenter named: the first
registered one (a SAM 3 first when words are given, else SAM 2.1, SAM 3, SAM).
Output: one gray8 mask (255 selected), the size of the crop the model saw, placed at
info.offset in the sent raster; outside it nothing is selected.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sfumato.bridge.geometry import Rect
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.raster import Layout
from sfumato.bridge.schema import MATTING_KINDS, SEGMENT, WORDS_FAMILY, ResultInfo
from sfumato.core.diffusion.params import read_layer, read_mask
from sfumato.core.errors import SfumatoError
from sfumato.core.models.registry import ModelEntry
from sfumato.core.models.segmenter_run import FAMILY_NAMES, Prompts
from sfumato.core.pixels.arrays import array_to_raster
from sfumato.core.pixels.masks import selection_bbox
from sfumato.core.task_api import TaskContext, TaskOutput

NAME = SEGMENT.name
MODEL_KINDS = SEGMENT.model_kinds
NO_MATTING = ("no matting model is registered, so the edge is hard; for soft edges (hair, "
              "fur) get a VitMatte folder and run `sfumato models add NAME FOLDER`")
MAX_POINTS = 64


def run(ctx: TaskContext) -> TaskOutput:
    # 1. Check the whole request before any model loads.
    values = SEGMENT.read(ctx.params)
    layer, _ = read_layer(ctx)
    height, width = layer.shape[:2]
    rough = read_mask(ctx, (height, width), required=False)
    prompts = read_prompts(ctx.params, width, height, values["text"].strip())
    area = Rect(0, 0, width, height)
    if rough is not None:
        selected = selection_bbox(rough)
        if selected is None:
            raise SfumatoError(ErrorCode.EMPTY_SELECTION, "the rough selection is empty; "
                               "select around the object, or send no selection")
        area = selected.grown(values["context"]).within(width, height)
        if prompts.subject:  # the object in the rough selection: its box is the prompt
            prompts = Prompts(box=(selected.x, selected.y, selected.right, selected.bottom))
    entry = _segmenter_entry(ctx, bool(prompts.text))

    # 2. The mask, on the area only (prompts moved into its pixels).
    segmenter: Any = ctx.models.load(entry)
    if prompts.text and not segmenter.takes_words:
        from sfumato.core.models.segmenter_run import words_refused

        raise words_refused(segmenter.name)
    ctx.cancel.raise_if_cancelled()
    ctx.progress(0, 2, "segment")
    pixels = _rgba8(layer[area.slices])
    mask = segmenter.segment(pixels, shifted(prompts, -area.x, -area.y))
    ctx.progress(1, 2, "segment")

    # 3. Soft edges, if asked for and a matting model is there.
    warnings: list[str] = []
    out = mask.view(np.uint8) * np.uint8(255)  # bool is one byte: 0/1 -> 0/255, no float pass
    matting = _matting_entry(ctx, values["matting"] or None) if values["soft"] else None
    if values["soft"] and matting is None:
        warnings.append(NO_MATTING)
    if matting is not None and mask.any():
        alpha = ctx.models.load(matting).refine(pixels, mask)
        out = np.clip(alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)
    ctx.progress(2, 2, "segment")
    if not mask.any():
        warnings.append("the model found nothing there; try another point or a larger box")
    info = ResultInfo(offset=(area.x, area.y), names=(f"Selection ({entry.name})",),
                      warnings=tuple(warnings), model=entry.name)
    return TaskOutput([array_to_raster(out, Layout.GRAY8)], info.to_wire())


def read_prompts(params: dict[str, Any], width: int, height: int, text: str) -> Prompts:
    """The request's points and box, checked against the raster's size."""
    points = params.get("points") or []
    if not isinstance(points, list) or len(points) > MAX_POINTS:
        raise _bad(f"points must be a list of up to {MAX_POINTS} [x, y] or [x, y, 1|0] "
                   f"entries, got {points!r}")
    read: list[tuple[float, float, int]] = []
    for point in points:
        if not (isinstance(point, list) and len(point) in (2, 3)
                and all(_number(v) for v in point)
                and (len(point) == 2 or point[2] in (0, 1))):
            raise _bad(f"a point is [x, y] or [x, y, 1 include | 0 exclude], got {point!r}")
        x, y = float(point[0]), float(point[1])
        if not (0 <= x <= width and 0 <= y <= height):
            raise _bad(f"the point ({x:g}, {y:g}) lies outside the {width}x{height} layer; "
                       "points are in the sent layer's pixels")
        read.append((x, y, int(point[2]) if len(point) == 3 else 1))
    box = params.get("box")
    corners = None
    if box is not None:
        if not (isinstance(box, list) and len(box) == 4 and all(_number(v) for v in box)
                and box[2] > 0 and box[3] > 0):
            raise _bad(f"box is [x, y, width, height] with a positive size, got {box!r}")
        x0, y0 = max(0.0, float(box[0])), max(0.0, float(box[1]))
        x1 = min(float(width), float(box[0] + box[2]))
        y1 = min(float(height), float(box[1] + box[3]))
        if x1 <= x0 or y1 <= y0:
            raise _bad(f"the box {box!r} lies outside the {width}x{height} layer")
        corners = (x0, y0, x1, y1)
    return Prompts(tuple(read), corners, text)


def shifted(prompts: Prompts, dx: int, dy: int) -> Prompts:
    points = tuple((x + dx, y + dy, label) for x, y, label in prompts.points)
    box = None if prompts.box is None else (
        prompts.box[0] + dx, prompts.box[1] + dy, prompts.box[2] + dx, prompts.box[3] + dy)
    return Prompts(points, box, prompts.text)


def _segmenter_entry(ctx: TaskContext, words: bool) -> ModelEntry:
    if ctx.model_id is not None:
        return ctx.models.entry(ctx.model_id, MODEL_KINDS, default=None)
    found = ctx.models.candidates(MODEL_KINDS)
    if not found:
        raise SfumatoError(ErrorCode.UNKNOWN_MODEL, "no segmenter is registered; get a SAM 2.1 "
                           f"(or, to select by words, a {WORDS_FAMILY}) transformers folder and "
                           "run `sfumato models add NAME FOLDER`")
    order = ["sam3", "sam2", "sam"] if words else ["sam2", "sam3", "sam"]
    found.sort(key=lambda e: (order.index(_family(e)) if _family(e) in order else 9, e.name))
    return found[0]


def _family(entry: ModelEntry) -> str:
    from pathlib import Path

    from sfumato.core.models.guide_loader import read_config
    from sfumato.core.models.segmenter_run import FAMILY_OF_ARCHITECTURE

    config = read_config(Path(entry.path)) or {}
    architecture = str((config.get("architectures") or [None])[0])
    family = FAMILY_OF_ARCHITECTURE.get(architecture, "")
    return family if family in FAMILY_NAMES else ""


def _matting_entry(ctx: TaskContext, model_id: str | None) -> ModelEntry | None:
    if model_id is not None:
        return ctx.models.entry(model_id, MATTING_KINDS, default=None)
    found = ctx.models.candidates(MATTING_KINDS)
    return found[0] if found else None


def _rgba8(layer: np.ndarray) -> np.ndarray:
    if layer.dtype == np.uint8:
        return layer
    return ((layer.astype(np.uint32) + 128) // 257).astype(np.uint8)  # rgba16


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and \
        bool(np.isfinite(value))


def _bad(message: str) -> SfumatoError:
    return SfumatoError(ErrorCode.BAD_PARAMS, message)
