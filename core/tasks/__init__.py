"""The task catalogue: names, the model kinds each accepts, and where its code lives.

Pure data, so the server can validate a request without importing torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from sfumato.bridge.protocol import ErrorCode
from sfumato.core.config import DEFAULT_UPSCALER
from sfumato.core.errors import SfumatoError

_DIFFUSION_INPAINT = frozenset({"sdxl-inpaint", "sdxl", "sd15-inpaint", "flux-fill"})
_DIFFUSION_REFINE = frozenset({"sdxl", "sdxl-inpaint", "sd15", "sd15-inpaint", "flux", "flux-fill"})
_PREPROCESSOR_MODELS = frozenset({"depth-estimator", "pose-estimator"})
_GUIDE_RASTERS = 8  # core/guide_inputs.py: up to 4 control images and 4 image prompts


@dataclass(frozen=True)
class TaskSpec:
    name: str
    module: str
    model_kinds: frozenset[str]
    default_model: str | None
    inputs: tuple[str, ...]  # what each attached raster is, in order
    guide_rasters: int = 0  # how many more may follow: control images, image prompts


CATALOGUE: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec("upscale", "upscale", frozenset({"upscaler"}), DEFAULT_UPSCALER, ("image",)),
        TaskSpec("inpaint", "inpaint", _DIFFUSION_INPAINT, None, ("image", "mask"),
                 _GUIDE_RASTERS),
        TaskSpec("refine", "refine", _DIFFUSION_REFINE, None, ("image", "mask?"),
                 _GUIDE_RASTERS),
        TaskSpec("preprocess", "preprocess", _PREPROCESSOR_MODELS, None, ("image",)),
    )
}


def task_spec(name: str) -> TaskSpec:
    spec = CATALOGUE.get(name)
    if spec is None:
        known = ", ".join(sorted(CATALOGUE))
        raise SfumatoError(ErrorCode.UNKNOWN_TASK,
                           f"unknown task {name!r}; this daemon runs {known}")
    return spec


def task_module(name: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{task_spec(name).module}")
