"""The task catalogue: each task's contract (bridge/schema.py), its default model and where
its code lives.

Pure data, so the server can validate a request without importing torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from sfumato.bridge.schema import MAX_GUIDE_RASTERS, TASKS, TaskSchema, task_schema
from sfumato.core.config import DEFAULT_UPSCALER

# The default model a task runs when a request names none (None: the request must name one).
_DEFAULT_MODELS = {"upscale": DEFAULT_UPSCALER}


@dataclass(frozen=True)
class TaskSpec:
    schema: TaskSchema
    module: str
    default_model: str | None

    @property
    def name(self) -> str:
        return self.schema.name

    @property
    def model_kinds(self) -> frozenset[str]:
        return self.schema.model_kinds

    @property
    def inputs(self) -> tuple[str, ...]:
        """What each attached raster is, in order ("mask?": optional)."""
        return self.schema.inputs

    @property
    def guide_rasters(self) -> int:
        """How many more rasters may follow: control images, image prompts."""
        return MAX_GUIDE_RASTERS if self.schema.guided else 0


CATALOGUE: dict[str, TaskSpec] = {
    name: TaskSpec(schema, name, _DEFAULT_MODELS.get(name)) for name, schema in TASKS.items()
}


def task_spec(name: str) -> TaskSpec:
    return CATALOGUE[task_schema(name).name]  # task_schema: UNKNOWN_TASK, naming the tasks


def task_module(name: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{task_spec(name).module}")
