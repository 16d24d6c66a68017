"""Checks a submit must pass before it is queued, so bad input is refused at once, typed."""

from __future__ import annotations

from sfumato.bridge.protocol import ErrorCode, Submit
from sfumato.bridge.raster import Layout, Raster
from sfumato.core.config import Settings
from sfumato.core.diffusion.guide_inputs import guide_indices
from sfumato.core.errors import SfumatoError
from sfumato.core.models.registry import ModelKind, Registry, require_kind
from sfumato.core.preprocessors.catalogue import check_kind
from sfumato.core.tasks import task_spec

# What a control's or an image prompt's `model` id may name (core/guidance.py loads them).
GUIDE_MODEL_KINDS = {
    "controls": frozenset({ModelKind.CONTROLNET.value, ModelKind.T2I_ADAPTER.value}),
    "image_prompts": frozenset({ModelKind.IP_ADAPTER.value}),
}
IMAGE_LAYOUTS = {Layout.RGBA8, Layout.BGRA8, Layout.RGBA16, Layout.RGBAF32, Layout.GRAY8,
                 Layout.GRAY16, Layout.GRAYF32}
MASK_LAYOUTS = {Layout.GRAY8, Layout.GRAY16}


def check_submit(message: Submit, rasters: list[Raster], settings: Settings,
                 registry: Registry) -> None:
    spec = task_spec(message.task)
    values = spec.schema.read(message.params)  # every parameter's type and range, at once
    required = [name for name in spec.inputs if not name.endswith("?")]
    if not len(required) <= len(rasters) <= len(spec.inputs) + spec.guide_rasters:
        names = ", ".join(n.rstrip("?") for n in spec.inputs)
        more = f" (and up to {spec.guide_rasters} control images and image prompts)" \
            if spec.guide_rasters else ""
        raise SfumatoError(ErrorCode.BAD_PARAMS,
                           f"{spec.name} takes {names}{more} as rasters; got {len(rasters)}")
    guides = guide_indices(message.params) if spec.guide_rasters else set()
    for index, raster in enumerate(rasters):
        name = spec.inputs[index].rstrip("?") if index < len(spec.inputs) else "guide image"
        _check_raster("guide image" if index in guides else name, raster, settings)
    if message.model is not None:
        _check_model(message.model, spec.model_kinds, settings, registry)
    if spec.guide_rasters:
        _check_guides(message.params, registry)
    for param in spec.schema.params:  # params that name another model (a refine model ...)
        if param.model_kinds and values[param.name]:
            require_kind(registry.get(values[param.name]), param.model_kinds)


def _check_guides(params: dict, registry: Registry) -> None:
    """Control kinds and guide model ids, so a typo is refused at submit, not after the queue
    and a model load; the rest (raster indices, numbers) is checked when the job reads them."""
    for key, kinds in GUIDE_MODEL_KINDS.items():
        items = params.get(key)
        if not isinstance(items, list):
            continue
        for item in items:
            if not isinstance(item, dict):
                continue
            if key == "controls":
                check_kind(item.get("kind"))
            model = item.get("model")
            if isinstance(model, str) and model:
                require_kind(registry.get(model), kinds)  # get: UNKNOWN_MODEL, listing ids


def _check_raster(name: str, raster: Raster, settings: Settings) -> None:
    if raster.is_empty:
        raise SfumatoError(
            ErrorCode.EMPTY_IMAGE,
            f"the {name} is empty ({raster.width}x{raster.height}); pick a layer with pixels",
        )
    pixels = raster.width * raster.height
    if pixels > settings.max_pixels:
        raise SfumatoError(
            ErrorCode.IMAGE_TOO_LARGE,
            f"the {name} is {raster.width}x{raster.height} ({pixels / 1e6:.0f} MP), over this "
            f"daemon's limit of {settings.max_pixels / 1e6:.0f} MP; work on a selection, or "
            "raise max_pixels under [daemon] in SFUMATO_HOME/config.toml",
        )
    allowed = MASK_LAYOUTS if name == "mask" else IMAGE_LAYOUTS
    if raster.layout not in allowed:
        kinds = ", ".join(sorted(layout.value for layout in allowed))
        raise SfumatoError(ErrorCode.UNSUPPORTED_LAYOUT,
                           f"the {name} is {raster.layout.value}; send it as {kinds}")


def _check_model(model: str, kinds: frozenset[str], settings: Settings,
                 registry: Registry) -> None:
    entry = registry.find(model)
    if entry is None:
        if model == settings.default_upscaler:
            return  # imported on first use from the bundled weights
        registry.get(model)  # raises UNKNOWN_MODEL with the list of known ids
        return
    require_kind(entry, kinds)
