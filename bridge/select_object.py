"""Select by click, box, words or subject: the use case GIMP and Krita share. The daemon's
`segment` task makes the mask; the host's selection is replaced by it (or it is kept as a
channel), in one undo step; no layer changes.

Modes:
- "selection": the object inside the current (rough) selection; the layer is read only over
  the selection's box plus `context`, and the selection itself is the prompt;
- "points": include (and exclude) points, in IMAGE coordinates (a path's anchors);
- "words": the objects the words name (a SAM 3 segmenter);
- "subject": the main subject of the layer.

Outputs (bridge/schema.py SELECT_OUTPUTS): "selection" replaces the selection, "channel" keeps
the mask as a channel, "layer" adds the object cut out (the layer's pixels, alpha times the
mask) as a new layer at the mask's place; the source layer stays as it is.

A host that can take the result defines `replace_selection(mask, x, y)` (gray8 `mask`, its
top-left at image position (x, y); nothing selected outside it) and, for the channel choice,
`add_channel(mask, x, y, name)`; the layer choice uses `add_layer`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .actions import ActionError, ActionOutcome, _guarded, _run, _selection, _whole
from .client import Client
from .cutout import cut_out
from .geometry import Rect
from .host import HostDocument
from .raster import Raster
from .schema import DIFFUSION_LAYOUTS, SEGMENT, SELECT_MODES, SELECT_OUTPUTS, ResultInfo
from .selection import crop

MODES = tuple(SELECT_MODES)
OUTPUTS = tuple(SELECT_OUTPUTS)
PLACES = {"selection": "replace_selection", "channel": "add_channel", "layer": "add_layer"}
Point = tuple[float, float]


def select_object(host: HostDocument, client: Client, params: Mapping[str, Any],
                  model: str | None, mode: str, include: Sequence[Point] = (),
                  exclude: Sequence[Point] = (), output: str = "selection") -> ActionOutcome:
    """Replace the host's selection with the mask of what `mode` points at (or, by `output`,
    add it as a channel, or add the object cut out as a new layer); no layer changes."""
    return _guarded(host, lambda: _select(host, client, dict(params), model, mode,
                                          include, exclude, output))


def _select(host: HostDocument, client: Client, params: dict[str, Any], model: str | None,
            mode: str, include: Sequence[Point], exclude: Sequence[Point],
            output: str) -> ActionOutcome:
    if mode not in MODES:
        raise ActionError(f"unknown selection mode {mode!r}; use one of {', '.join(MODES)}. "
                          "The image is unchanged.")
    if output not in OUTPUTS:
        raise ActionError(f"unknown result {output!r}; use one of {', '.join(OUTPUTS)}. "
                          "The image is unchanged.")
    place = getattr(host, PLACES[output], None)
    if place is None:
        raise ActionError("this editor's sfumato adapter cannot set the selection. The image "
                          "is unchanged.")
    layer = host.layer_bounds()
    whole = _whole(layer)
    area, rasters = whole, []
    if mode == "selection":
        context = int(params.get("context") or SEGMENT.param("context").default or 0)
        selected = _selection(host, whole, context)
        if selected is None:
            raise ActionError("Nothing is selected: select roughly around the object first. "
                              "The image is unchanged.")
        area = selected.box.grown(context).clamped(whole)
        rasters = [host.read_pixels(area, DIFFUSION_LAYOUTS), selected.mask_over(area)]
    else:
        rasters = [host.read_pixels(area, DIFFUSION_LAYOUTS)]
    if mode == "points":
        if not include:
            raise ActionError("Give at least one point on the object (GIMP: the active path's "
                              "anchors; Krita: a vector layer's shapes). The image is "
                              "unchanged.")
        params["points"] = [_inside(x - layer.x, y - layer.y, whole, label)
                            for points, label in ((include, 1), (exclude, 0))
                            for x, y in points]
    if mode == "words" and not str(params.get("text") or "").strip():
        raise ActionError("Type the words naming what to select. The image is unchanged.")
    if mode != "words":
        params.pop("text", None)
    outcome = _run(host, client, SEGMENT.name, params, rasters, model)
    mask: Raster = outcome.rasters[0]
    info = ResultInfo.from_wire(outcome.result.info)
    x = layer.x + area.x + info.offset[0]
    y = layer.y + area.y + info.offset[1]
    name = info.names[0] if info.names else "sfumato selection"
    layers: tuple[str, ...] = ()
    if output == "layer":  # the layer's own pixels under the mask, alpha times it
        under = crop(rasters[0], Rect(info.offset[0], info.offset[1], mask.width, mask.height))
        cut, layers = cut_out(under, mask), (name.replace("Selection", "Cutout", 1),)
    with host.undo_group("sfumato select"):
        if output == "channel":
            place(mask, x, y, name)
        elif output == "layer":
            place(cut, x, y, layers[0])
        else:
            place(mask, x, y)
    message = "; ".join(info.warnings)
    if message:
        host.show_message(f"sfumato: {message}")
    return ActionOutcome(True, message, layers)


def _inside(x: float, y: float, whole: Rect, label: int) -> list[float]:
    if not (0 <= x <= whole.width and 0 <= y <= whole.height):
        raise ActionError(f"a point ({x:g}, {y:g}) lies off the active layer: put the path's "
                          "points on the layer. The image is unchanged.")
    return [x, y, label]
