"""Checked `controls` and `image_prompts` of a diffusion request (inpaint, refine).

Wire form (params), each list optional:
  controls: [{"kind": "canny", "image": 2 | "auto", "model": "cn-canny" (optional),
              "scale": 0.6, "start": 0.0, "end": 1.0}, ...]
  image_prompts: [{"image": 3, "weight": 0.6, "model": "ip-plus" (optional)}, ...]
`image` is the index of an attached raster after the layer (and mask): a control image covers
the same rectangle as the layer raster (another size is stretched to it); an image prompt is
any picture. "auto" makes the control image from the layer itself (core/preprocessors.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.raster import Layout, Raster
from sfumato.bridge.schema import (
    CONTROL_END,
    CONTROL_SCALE,
    CONTROL_START,
    IMAGE_PROMPT_WEIGHT,
    MAX_GUIDES,
    Param,
)
from sfumato.core.errors import SfumatoError
from sfumato.core.pixels.arrays import raster_to_array
from sfumato.core.preprocessors.catalogue import check_kind

AUTO = "auto"
MAX_CONTROLS = MAX_GUIDES
MAX_IMAGE_PROMPTS = MAX_GUIDES
GUIDE_LAYOUTS = (Layout.RGBA8, Layout.BGRA8, Layout.RGBA16)


@dataclass(frozen=True)
class ControlRequest:
    kind: str
    image: np.ndarray | None  # (H, W, 4) RGBA as sent; None: made from the layer ("auto")
    model: str | None  # a registry id; None: the registered one whose id names the kind
    scale: float
    start: float
    end: float


@dataclass(frozen=True)
class ImagePromptRequest:
    image: np.ndarray  # (H, W, 4) RGBA
    weight: float
    model: str | None


@dataclass(frozen=True)
class Guides:
    controls: tuple[ControlRequest, ...] = ()
    image_prompts: tuple[ImagePromptRequest, ...] = ()
    warnings: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.controls or self.image_prompts)


def guide_indices(params: dict[str, Any]) -> set[int]:
    """The raster indices the request's controls and image prompts name (not checked)."""
    found = set()
    for key in ("controls", "image_prompts"):
        items = params.get(key)
        if isinstance(items, list):
            for item in items:
                index = item.get("image") if isinstance(item, dict) else None
                if isinstance(index, int) and not isinstance(index, bool):
                    found.add(index)
    return found


def read_guides(params: dict[str, Any], rasters: list[Raster]) -> Guides:
    """The request's controls and image prompts, checked; warnings for odd but allowed values."""
    warnings: list[str] = []
    controls = []
    for number, item in enumerate(_items(params, "controls", MAX_CONTROLS), start=1):
        kind = check_kind(item.get("kind"))
        image_ref = item.get("image", AUTO)
        image = None if image_ref == AUTO else _raster(rasters, image_ref, f"control {number}")
        scale = _number(item, CONTROL_SCALE, f"control {number}")
        start = _number(item, CONTROL_START, f"control {number}")
        end = _number(item, CONTROL_END, f"control {number}")
        if start >= end:
            raise SfumatoError(ErrorCode.BAD_PARAMS,
                               f"control {number}: start ({start:g}) must be before end "
                               f"({end:g}), as fractions of the steps")
        if scale > 1.0:
            warnings.append(f"control {number} ({kind}) has conditioning scale {scale:g}; above "
                            "1.0 a control usually overpowers the prompt and leaves artefacts")
        controls.append(ControlRequest(kind, image, _model(item, f"control {number}"), scale,
                                       start, end))
    prompts = []
    for number, item in enumerate(_items(params, "image_prompts", MAX_IMAGE_PROMPTS), start=1):
        what = f"image prompt {number}"
        if "image" not in item:
            raise SfumatoError(ErrorCode.BAD_PARAMS, f"{what}: name its picture's raster index "
                               "as image")
        prompts.append(ImagePromptRequest(
            _raster(rasters, item["image"], what),
            _number(item, IMAGE_PROMPT_WEIGHT, what),
            _model(item, what)))
    return Guides(tuple(controls), tuple(prompts), tuple(warnings))


def _items(params: dict[str, Any], key: str, limit: int) -> list[dict[str, Any]]:
    items = params.get(key)
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise SfumatoError(ErrorCode.BAD_PARAMS, f"{key} must be a list of objects, got {items!r}")
    if len(items) > limit:
        raise SfumatoError(ErrorCode.BAD_PARAMS,
                           f"at most {limit} {key.replace('_', ' ')} per request; got {len(items)}")
    return items


def _raster(rasters: list[Raster], index: Any, what: str) -> np.ndarray:
    if isinstance(index, bool) or not isinstance(index, int) or not 1 <= index < len(rasters):
        raise SfumatoError(
            ErrorCode.BAD_PARAMS,
            f"{what}: image must be \"auto\" or the index of an attached raster after the layer "
            f"(1 to {len(rasters) - 1}); got {index!r}",
        )
    raster = rasters[index]
    if raster.layout not in GUIDE_LAYOUTS or raster.is_empty:
        raise SfumatoError(ErrorCode.UNSUPPORTED_LAYOUT,
                           f"{what}: its raster is {raster.layout.value} "
                           f"{raster.width}x{raster.height}; send a non-empty rgba8, bgra8 or "
                           "rgba16 image")
    return raster_to_array(raster)


def _number(item: dict[str, Any], param: Param, what: str) -> float:
    """`item[param.name]` checked against the task contract (bridge/schema.py)."""
    value = item.get(param.name)
    if value is None:
        return float(param.default or 0.0)
    try:
        return float(param.check(value))
    except SfumatoError as exc:
        raise SfumatoError(exc.code, f"{what}: {exc.message}") from None


def _model(item: dict[str, Any], what: str) -> str | None:
    model = item.get("model")
    if model is None or model == "":
        return None
    if not isinstance(model, str):
        raise SfumatoError(ErrorCode.BAD_PARAMS, f"{what}: model must be a model id, got "
                           f"{model!r}")
    return model
