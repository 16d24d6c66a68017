"""The worker's view of models: registry lookups with kind checks, loading through the cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sfumato.bridge.protocol import ErrorCode

from ..config import Settings
from ..errors import SfumatoError
from .cache import ModelCache
from .registry import ModelEntry, ModelKind, Registry, require_kind


class WorkerModels:
    """Implements task_api.ModelProvider for the worker process."""

    def __init__(self, settings: Settings, device: str) -> None:
        self.settings = settings
        self.device = device
        self.registry = Registry(settings.home)
        self.cache = ModelCache(settings.model_cache_bytes, _model_bytes)
        self._shared: dict[str, Any] = {}  # components shared between pipelines (e.g. a VAE)

    def entry(self, model_id: str | None, kinds: frozenset[str], default: str | None) -> ModelEntry:
        name = model_id or default
        if name is None:
            raise SfumatoError(
                ErrorCode.BAD_PARAMS,
                "this task needs a model: pass one by id (`sfumato models list` shows them)",
            )
        found = self.registry.find(name)
        if found is None and name == self.settings.default_upscaler:
            from .ncnn_import import ensure_default_upscaler

            found = ensure_default_upscaler(self.registry, name)
        return require_kind(found or self.registry.get(name), kinds)

    def load(self, entry: ModelEntry) -> Any:
        if entry.kind != ModelKind.UPSCALER.value:
            raise SfumatoError(ErrorCode.INTERNAL, f"{entry.kind} models load as pipelines")
        from .upscaler_loader import load_upscaler

        def load_now() -> Any:
            return load_upscaler(Path(entry.path), allow_pickle=self.settings.allow_pickle,
                                 device=self.device)

        return self.cache.get(f"upscaler:{entry.name}", load_now)

    def load_pipeline(self, entry: ModelEntry, task: str) -> Any:
        from .diffusion_loader import load_pipeline

        return self.cache.get(
            f"{entry.name}:{task}",
            lambda: load_pipeline(entry, task, self.device, self._shared),
        )

    def describe(self) -> dict[str, Any]:
        return {"loaded": self.cache.keys(), "cache_bytes": self.cache.used_bytes}


def _model_bytes(model: Any) -> int:
    from .diffusion_loader import pipeline_bytes

    if hasattr(model, "components"):
        return pipeline_bytes(model)
    module = getattr(model, "model", model)
    params = getattr(module, "parameters", None)
    if params is None:
        return 0
    return sum(p.numel() * p.element_size() for p in params())
