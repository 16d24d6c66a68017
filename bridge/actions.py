"""The use cases GIMP and Krita share: read from the host, send one request, stream progress,
write the result as new layers.

Every action returns an `ActionOutcome` and never raises for things an artist can cause (no
daemon, nothing selected, a job that failed or was cancelled): the host gets a readable
message and the document stays as it was. Layers are made only once the result has arrived,
all inside one undo group.

Selection-only upscale (a choice): the selection's bounding box is upscaled and added as a
new layer `scale` times its size, its top-left on the selection's top-left; the document is
not resized, so the new layer usually reaches past the selection (and maybe the canvas).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .client import Client, JobCancelledError, JobOutcome
from .errors import SfumatoError
from .geometry import Rect
from .guides import DEFAULT_SCALE, DEFAULT_WEIGHT, Control, ImagePrompt
from .host import HostDocument
from .protocol import ErrorCode, Message, Preview, Progress
from .raster import Raster
from .recipe import Recipe, recipes
from .schema import (
    DIFFUSION_LAYOUTS,
    EXPAND,
    EXPAND_SIDES,
    TASKS,
    UPSCALE,
    UPSCALE_LAYOUTS,
    ResultInfo,
    TaskSchema,
)
from .selection import crop, mask_bounds

PING_TIMEOUT_S = 2.0  # "no daemon" must reach the artist within seconds, not a job timeout
UPSCALE_CONTEXT = 96  # layer pixels around a selection: Real-ESRGAN sees that far, so its
# result matches a whole-layer upscale at the selection's edges too


NOTHING_SELECTED = "Nothing is selected: select the area to {verb} first. The image is unchanged."
SELECTION_MISSES_LAYER = (
    "The selection does not cover any pixel of the active layer: select part of that layer, "
    "or pick the layer under the selection. The image is unchanged."
)


class ActionError(SfumatoError):
    """Something the artist can fix; the message says what."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.BAD_PARAMS) -> None:
        super().__init__(code, message)


@dataclass(frozen=True)
class ActionOutcome:
    ok: bool
    message: str = ""
    layers: tuple[str, ...] = ()  # names of the layers added, in order (the first ends on top)
    code: ErrorCode | None = None  # why it failed: hosts choose what to show from this


def inpaint_selection(host: HostDocument, client: Client, params: Mapping[str, Any],
                      model: str | None, *, controls: Sequence[Control] = (),
                      image_prompts: Sequence[ImagePrompt] = ()) -> ActionOutcome:
    """Repaint the selected area of the active layer from `params["prompt"]`, following
    `controls` and `image_prompts` (other layers, or "auto" controls) when given."""
    guides = _Guides(tuple(controls), tuple(image_prompts))
    return _guarded(host, lambda: _diffuse(host, client, "inpaint", params, model, True, guides))


def refine(host: HostDocument, client: Client, params: Mapping[str, Any],
           model: str | None, *, controls: Sequence[Control] = (),
           image_prompts: Sequence[ImagePrompt] = ()) -> ActionOutcome:
    """Rework the selected area (or, with no selection, the whole active layer)."""
    guides = _Guides(tuple(controls), tuple(image_prompts))
    return _guarded(host, lambda: _diffuse(host, client, "refine", params, model, False, guides))


def generate(host: HostDocument, client: Client, params: Mapping[str, Any],
             model: str | None, *, controls: Sequence[Control] = (),
             image_prompts: Sequence[ImagePrompt] = ()) -> ActionOutcome:
    """A new picture from `params["prompt"]` into the selection or, with none, over the whole
    canvas, as new layers (one per variant) above the active layer."""
    guides = _Guides(tuple(controls), tuple(image_prompts))
    return _guarded(host, lambda: _diffuse(host, client, "generate", params, model, False,
                                           guides, canvas=True))


def edit(host: HostDocument, client: Client, params: Mapping[str, Any],
         model: str | None) -> ActionOutcome:
    """Change the selected area (or, with no selection, the whole active layer) as
    `params["instruction"]` says, with an edit model, as new layers (one per variant) exactly
    over it: nothing moves, nothing outside the selection changes."""
    return _guarded(host, lambda: _diffuse(host, client, "edit", params, model, False))


def expand_canvas(host: HostDocument, client: Client, params: Mapping[str, Any],
                  model: str | None) -> ActionOutcome:
    """Grow the canvas by `params` left/top/right/bottom pixels (as the host's own canvas-size
    command does: layers keep their pixels) and paint the new border from the active layer's
    edge, as a new layer over it."""
    return _guarded(host, lambda: _expand(host, client, params, model, grow=True))


def remove_object(host: HostDocument, client: Client, params: Mapping[str, Any],
                  model: str | None) -> ActionOutcome:
    """The selected object gone: the selection filled with what surrounds it (LaMa, MAT, or
    an inpaint model refining their fill; bridge/schema.py REMOVE), as a new layer above the
    active layer. `model` None: the daemon's registered LaMa or MAT, else OpenCV's Telea."""
    return _guarded(host, lambda: _diffuse(host, client, "remove", params, model, True))


def regenerate(host: HostDocument, client: Client, recipe: str) -> ActionOutcome:
    """Paint a result again from the recipe it keeps (bridge/recipe.py): the same task, model
    and settings with a new seed, on the active layer (the result's source) and the current
    selection, as new layers."""
    return _guarded(host, lambda: _regenerate(host, client, recipe))


def preprocess_layer(host: HostDocument, client: Client, kind: str,
                     model: str | None = None) -> ActionOutcome:
    """The control image a preprocessor (canny, lineart, depth...) makes from the active layer,
    as a new layer above it: the artist can paint over it and use it as a control's layer."""
    return _guarded(host, lambda: _preprocess(host, client, kind, model))


def upscale_layer(host: HostDocument, client: Client, params: Mapping[str, Any],
                  model: str | None, selection_only: bool) -> ActionOutcome:
    """Upscale the active layer, growing the image with it; or only the selection (see the
    module note). `params`: the upscale contract's (scale 0 or absent: the model's own)."""
    return _guarded(host, lambda: _upscale(host, client, params, model, selection_only))


# --- the work -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Guides:
    controls: tuple[Control, ...] = ()
    image_prompts: tuple[ImagePrompt, ...] = ()


def _diffuse(host: HostDocument, client: Client, task: str, params: Mapping[str, Any],
             model: str | None, need_selection: bool,
             guides: _Guides = _Guides(), canvas: bool = False) -> ActionOutcome:
    client.ping(timeout_s=PING_TIMEOUT_S)
    layer = host.layer_bounds()
    # `canvas`: with no selection the whole canvas (generate), not only the layer's extent
    whole = _canvas(host, layer) if canvas else _whole(layer)
    schema = TASKS[task]
    given = _given(schema, params)
    host.progress(0.0, f"sfumato {task}: reading the selection")
    # Only the selection's box plus what the task reaches around it goes over the wire; the
    # daemon plans with the same reach (bridge/geometry.py) inside what it gets.
    selected = _selection(host, whole, schema.reach(given))
    if selected is None:
        if need_selection:
            raise ActionError(NOTHING_SELECTED.format(verb=task), ErrorCode.EMPTY_SELECTION)
        area, rasters = whole, [host.read_pixels(whole, DIFFUSION_LAYOUTS)]
    else:
        area = selected.box.grown(schema.reach(given)).clamped(whole)
        rasters = [host.read_pixels(area, DIFFUSION_LAYOUTS), selected.mask_over(area)]
    wire = _guide_params(host, guides, area, rasters)
    outcome = _run(host, client, task, {**given, **wire}, rasters, model)
    info = ResultInfo.from_wire(outcome.result.info)
    dx, dy = area.x + info.offset[0], area.y + info.offset[1]  # the crop's place is ours
    names = _layer_names(task, info, len(outcome.rasters))
    kept = _recipes(host, client, task, {**given, **_guide_recipe(guides)}, info, len(names))
    with host.undo_group(f"sfumato {task}"):
        for raster, name, recipe in zip(outcome.rasters, names, kept, strict=True):
            host.add_layer(raster, layer.x + dx, layer.y + dy, name)
            _keep(host, recipe)
    return ActionOutcome(True, "", tuple(names))


def _guide_params(host: HostDocument, guides: _Guides, area: Rect,
                  rasters: list[Raster]) -> dict[str, Any]:
    """The request's controls and image prompts; their layers' pixels are appended to
    `rasters` (a control's over `area`, the rectangle the layer raster covers; an image
    prompt's whole layer)."""
    if not guides.controls and not guides.image_prompts:
        return {}
    controls, prompts = [], []
    for control in guides.controls:
        if control.layer is None:
            controls.append(control.wire("auto"))
            continue
        rasters.append(_other_layer(host, control.layer, area, f"{control.kind} control"))
        controls.append(control.wire(len(rasters) - 1))
    for prompt in guides.image_prompts:
        rasters.append(_other_layer(host, prompt.layer, None, "image prompt"))
        prompts.append(prompt.wire(len(rasters) - 1))
    wire: dict[str, Any] = {}
    if controls:
        wire["controls"] = controls
    if prompts:
        wire["image_prompts"] = prompts
    return wire


def _other_layer(host: HostDocument, layer: str, rect: Rect | None, use: str) -> Raster:
    read = getattr(host, "read_layer", None)
    if read is None:
        raise ActionError(f"This editor's sfumato plug-in cannot read other layers, so no "
                          f"layer can be the {use}; use \"auto\" controls. The image is "
                          "unchanged.")
    raster: Raster | None = read(layer, rect, DIFFUSION_LAYOUTS)
    if raster is None:
        raise ActionError(f"There is no layer {layer!r} to use as the {use}. The image is "
                          "unchanged.")
    if raster.is_empty:
        raise ActionError(f"The layer {layer!r} chosen as the {use} has no pixels. The image "
                          "is unchanged.")
    return raster


def _canvas(host: HostDocument, layer: Rect) -> Rect:
    """The canvas in the active layer's coordinates."""
    width, height = host.canvas_size()
    return Rect(-layer.x, -layer.y, width, height)


def _expand(host: HostDocument, client: Client, params: Mapping[str, Any],
            model: str | None, grow: bool) -> ActionOutcome:
    """`grow` False (Regenerate): the canvas has grown already; the picture is what lies
    inside the border, and the new fill goes where the first one went."""
    client.ping(timeout_s=PING_TIMEOUT_S)
    given = _given(EXPAND, params)
    left, top, right, bottom = sides = [int(given.get(side) or 0) for side in EXPAND_SIDES]
    if not any(sides):
        raise ActionError("Give the pixels to add on at least one side. The image is "
                          "unchanged.")
    layer = host.layer_bounds()
    canvas = _canvas(host, layer)
    if not grow:
        canvas = Rect.from_edges(canvas.x + left, canvas.y + top, canvas.right - right,
                                 canvas.bottom - bottom)
        if canvas.is_empty:
            raise ActionError("The canvas is smaller than the border this result was painted "
                              "in; expand again instead. The image is unchanged.")
    # Only what the task reaches beside the growing sides goes over the wire: a wide canvas
    # grown on the right sends a strip, not the whole picture. A side border runs the full
    # length of the picture, so growing left or right needs every row (top or bottom: every
    # column).
    reach = EXPAND.reach(given)
    rows, columns = bool(left or right), bool(top or bottom)
    x0 = canvas.x if left or columns else max(canvas.x, canvas.right - reach)
    x1 = canvas.right if right or columns else min(canvas.right, canvas.x + reach)
    y0 = canvas.y if top or rows else max(canvas.y, canvas.bottom - reach)
    y1 = canvas.bottom if bottom or rows else min(canvas.bottom, canvas.y + reach)
    area = Rect.from_edges(x0, y0, x1, y1)
    host.progress(0.0, "sfumato expand: reading the picture")
    outcome = _run(host, client, "expand", given, [host.read_pixels(area, DIFFUSION_LAYOUTS)],
                   model)
    info = ResultInfo.from_wire(outcome.result.info)
    names = _layer_names("expand", info, len(outcome.rasters))
    # the canvas grows first: what was at image (x, y) is then at (x + left, y + top)
    dx, dy = (left, top) if grow else (0, 0)
    x, y = layer.x + area.x + info.offset[0] + dx, layer.y + area.y + info.offset[1] + dy
    kept = _recipes(host, client, "expand", given, info, len(names))
    with host.undo_group("sfumato expand"):
        if grow:
            host.grow_canvas(left, top, right, bottom)
        for raster, name, recipe in zip(outcome.rasters, names, kept, strict=True):
            host.add_layer(raster, x, y, name)
            _keep(host, recipe)
    return ActionOutcome(True, "", tuple(names))


REGENERATED = ("generate", "inpaint", "refine", "edit", "expand")


def _regenerate(host: HostDocument, client: Client, text: str) -> ActionOutcome:
    recipe = Recipe.from_json(text)
    if recipe.task not in REGENERATED:
        raise ActionError(f"Regenerate paints {', '.join(REGENERATED)} results again; for "
                          f"{recipe.task}, undo it and run it again. The image is unchanged.")
    controls = tuple(
        Control(str(c.get("kind")), None if c.get("image") == "auto" else str(c.get("image")),
                float(c.get("scale", DEFAULT_SCALE)), float(c.get("start", 0.0)),
                float(c.get("end", 1.0)), c.get("model"))
        for c in recipe.guides.get("controls", []) if isinstance(c, dict))
    prompts = tuple(ImagePrompt(str(p.get("image")), float(p.get("weight", DEFAULT_WEIGHT)),
                                p.get("model"))
                    for p in recipe.guides.get("image_prompts", []) if isinstance(p, dict))
    if recipe.task == "expand":  # on the grown canvas: the border painted again, no growth
        return _expand(host, client, recipe.again(), recipe.model, grow=False)
    return _diffuse(host, client, recipe.task, recipe.again(), recipe.model,
                    recipe.task == "inpaint", _Guides(controls, prompts),
                    canvas=recipe.task == "generate")


def _recipes(host: HostDocument, client: Client, task: str, sent: Mapping[str, Any],
             info: ResultInfo, count: int) -> list[Recipe | None]:
    """What made each result, for hosts that keep it with the layer (`keep_recipe`)."""
    if getattr(host, "keep_recipe", None) is None:
        return [None] * count
    try:
        version = client.hello().daemon_version
    except SfumatoError:
        version = ""
    return list(recipes(task, sent, info, count, version))


def _keep(host: HostDocument, recipe: Recipe | None) -> None:
    if recipe is not None:
        host.keep_recipe(recipe.to_json())  # type: ignore[attr-defined]  # optional


def _guide_recipe(guides: _Guides) -> dict[str, Any]:
    """The controls and image prompts as a recipe keeps them: by layer, not raster."""
    found: dict[str, Any] = {}
    if guides.controls:
        found["controls"] = [control.wire(control.layer or "auto")
                             for control in guides.controls]
    if guides.image_prompts:
        found["image_prompts"] = [{**prompt.wire(0), "image": prompt.layer}
                                  for prompt in guides.image_prompts]
    return found


def _preprocess(host: HostDocument, client: Client, kind: str,
                model: str | None) -> ActionOutcome:
    client.ping(timeout_s=PING_TIMEOUT_S)
    layer = host.layer_bounds()
    raster = host.read_pixels(_whole(layer), DIFFUSION_LAYOUTS)
    outcome = _run(host, client, "preprocess", {"kind": kind}, [raster], model)
    names = ResultInfo.from_wire(outcome.result.info).names
    name = names[0] if names else f"Control: {kind}"
    with host.undo_group(f"sfumato {name}"):
        host.add_layer(outcome.rasters[0], layer.x, layer.y, name)
    return ActionOutcome(True, "", (name,))


def _upscale(host: HostDocument, client: Client, given: Mapping[str, Any], model: str | None,
             selection_only: bool) -> ActionOutcome:
    client.ping(timeout_s=PING_TIMEOUT_S)
    layer = host.layer_bounds()
    whole = _whole(layer)
    params = _given(UPSCALE, given)
    if selection_only:
        return _upscale_selection(host, client, params, model, layer)
    outcome = _run(host, client, "upscale", params, [host.read_pixels(whole, UPSCALE_LAYOUTS)],
                   model)
    raster = outcome.rasters[0]
    info = ResultInfo.from_wire(outcome.result.info)
    factor = _factor(info, raster, whole)
    name = _upscale_name(info, factor, "")
    with host.undo_group(name):
        host.scale_image(factor)
        scaled = host.layer_bounds()  # the host moved and scaled the source with the image
        host.add_layer(raster, scaled.x, scaled.y, name)
    return ActionOutcome(True, "", (name,))


def _upscale_selection(host: HostDocument, client: Client, params: dict[str, Any],
                       model: str | None, layer: Rect) -> ActionOutcome:
    selected = _selection(host, _whole(layer), 0)
    if selected is None:
        raise ActionError(NOTHING_SELECTED.format(verb="upscale"), ErrorCode.EMPTY_SELECTION)
    bounds = selected.box
    area = bounds.grown(UPSCALE_CONTEXT).clamped(_whole(layer))
    params = {**params, "region": [bounds.x - area.x, bounds.y - area.y, bounds.width,
                                   bounds.height]}
    outcome = _run(host, client, "upscale", params, [host.read_pixels(area, UPSCALE_LAYOUTS)],
                   model)
    raster = outcome.rasters[0]
    info = ResultInfo.from_wire(outcome.result.info)
    factor = _factor(info, raster, bounds)
    if not _about(raster.width, bounds.width * factor) or \
            not _about(raster.height, bounds.height * factor):
        raise ActionError(
            f"the daemon returned {raster.width}x{raster.height} pixels for a "
            f"{bounds.width}x{bounds.height} selection at x{factor:g}; update the daemon "
            "(`sfumato serve`) to one that upscales regions. The image is unchanged."
        )
    name = _upscale_name(info, factor, " (selection)")
    with host.undo_group(name):
        host.add_layer(raster, layer.x + bounds.x, layer.y + bounds.y, name)
    return ActionOutcome(True, "", (name,))


@dataclass(frozen=True)
class _Selected:
    box: Rect  # the selected pixels' bounding box, layer coordinates
    mask: Raster  # the selection over `read`
    read: Rect  # where `mask` was read: `box` and the margin asked for, inside the layer

    def mask_over(self, area: Rect) -> Raster:
        """The mask over `area`, which lies inside `read`."""
        return crop(self.mask, area.moved(-self.read.x, -self.read.y))


def _selection(host: HostDocument, whole: Rect, margin: int) -> _Selected | None:
    """The selection on the active layer, read only around its box (with `margin` more on each
    side, inside the layer), so that the cost follows the selection and not the canvas: a
    16384-pixel canvas would otherwise mean a 256 MB mask read and scan. None when nothing is
    selected; ActionError when the selection misses the layer."""
    hinted = host.selection_bounds()
    if hinted is None:
        return None
    hinted = hinted.clamped(whole)  # the host's clip, made sure of
    if hinted.is_empty:
        raise ActionError(SELECTION_MISSES_LAYER)
    read = hinted.grown(margin).clamped(whole)
    mask = host.read_selection(read)
    if mask is None:
        return None
    # The host's box may be loose (stale bounds, a selection emptied over the layer):
    # the mask we hold anyway gives the exact one, partially selected pixels included.
    tight = mask_bounds(mask)
    if tight is None:
        raise ActionError(SELECTION_MISSES_LAYER)
    return _Selected(tight.moved(read.x, read.y), mask, read)


def _run(host: HostDocument, client: Client, task: str, params: dict[str, Any],
         rasters: Sequence[Raster], model: str | None) -> JobOutcome:
    label = f"sfumato {task}"
    host.progress(0.0, f"{label}: sending")

    show_preview = getattr(host, "show_preview", None)  # optional: hosts that can show one

    def on_event(message: Message, rasters_in: list[Raster]) -> None:
        if isinstance(message, Progress) and message.total > 0:
            text = f"{label}: {message.stage}" if message.stage else label
            host.progress(min(1.0, message.step / message.total), text)
        elif isinstance(message, Preview) and rasters_in and show_preview is not None:
            show_preview(rasters_in[0], message.step)

    outcome = client.run(task, params, rasters, model or None, on_event=on_event,
                         should_cancel=host.cancel_requested)
    if not outcome.rasters:
        raise ActionError(f"the daemon returned no image for {task}. The image is unchanged.")
    host.progress(1.0, f"{label}: adding the result")
    return outcome


def _guarded(host: HostDocument, work: Callable[[], ActionOutcome]) -> ActionOutcome:
    try:
        return work()
    except ActionError as exc:
        code, message = exc.code, exc.message
    except JobCancelledError as exc:
        code, message = exc.code, "sfumato: cancelled. The image is unchanged."
    except SfumatoError as exc:
        code = exc.code
        message = f"sfumato: {exc.message.rstrip('. ')}. The image is unchanged."
    host.show_message(message)
    return ActionOutcome(False, message, code=code)


# --- small pieces ---------------------------------------------------------------------


def _whole(layer: Rect) -> Rect:
    if layer.is_empty:
        raise ActionError("The active layer has no pixels. The image is unchanged.")
    return Rect(0, 0, layer.width, layer.height)


def _given(schema: TaskSchema, params: Mapping[str, Any]) -> dict[str, Any]:
    """The params a front end set, without the placeholders that mean "absent" (seed -1 ...);
    names the task does not know go on, for the daemon to refuse by name."""
    known = set(schema.names)
    return {key: value for key, value in params.items()
            if key not in known or not schema.param(key).means_absent(value)}


def _layer_names(task: str, info: ResultInfo, count: int) -> list[str]:
    """The task's own names when it sent them, else "sfumato <task> (seed N)"."""
    if len(info.names) == count:
        return list(info.names)
    seeds: list[int | None] = list(info.seeds) if len(info.seeds) == count else [None] * count
    if count == 1 and seeds[0] is None:
        return [f"sfumato {task}"]
    return [f"sfumato {task} ({f'seed {seed}' if seed is not None else f'{i + 1} of {count}'})"
            for i, seed in enumerate(seeds)]


def _factor(info: ResultInfo, raster: Raster, source: Rect) -> float:
    return info.scale if info.scale is not None else raster.width / source.width


def _about(size: int, expected: float) -> bool:
    return abs(size - expected) <= 1


def _upscale_name(info: ResultInfo, factor: float, suffix: str) -> str:
    via = f" {info.model}" if info.model else ""
    return f"sfumato upscale x{factor:g}{via}{suffix}"
