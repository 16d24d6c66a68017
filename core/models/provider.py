"""The worker's view of models: registry lookups with kind checks, loading through the cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sfumato.bridge.protocol import ErrorCode
from sfumato.core.config import Settings
from sfumato.core.device.speed_options import SpeedOptions, prepare_upscaler
from sfumato.core.errors import SfumatoError
from sfumato.core.models.cache import ModelCache
from sfumato.core.models.registry import ModelEntry, ModelFormat, ModelKind, Registry, require_kind


class WorkerModels:
    """Implements task_api.ModelProvider for the worker process."""

    def __init__(self, settings: Settings, device: str) -> None:
        self.settings = settings
        self.device = device
        self.registry = Registry(settings.home)
        self.cache = ModelCache(settings.model_cache_bytes, _model_bytes)
        self._shared: dict[str, Any] = {}  # components shared between pipelines (e.g. a VAE)
        self.speed = SpeedOptions.from_settings(settings)  # dtype, compile, tiling, batches
        self.low_memory = False  # set after an out-of-memory job: pipelines load leaner

    def entry(self, model_id: str | None, kinds: frozenset[str], default: str | None) -> ModelEntry:
        name = model_id or default
        if name is None:
            raise SfumatoError(
                ErrorCode.BAD_PARAMS,
                "this task needs a model and none was chosen: choose one (the plug-in's model "
                "list, or --model ID from `sfumato models list`); with none registered, "
                "`sfumato models scan FOLDER` registers a ComfyUI / A1111 / Hugging Face cache "
                "folder's models and `sfumato models add NAME PATH` one folder or file",
            )
        found = self.registry.find(name)
        if found is None and name == self.settings.default_upscaler:
            from sfumato.core.models.ncnn_import import ensure_default_upscaler

            found = ensure_default_upscaler(self.registry, name)
        return require_kind(found or self.registry.get(name), kinds)

    def load(self, entry: ModelEntry) -> Any:
        if entry.kind in (ModelKind.SEGMENTER.value, ModelKind.MATTING.value):
            from sfumato.core.models.segmenter_loader import load_segmentation_model

            # the same cache and budget as the diffusion models: either evicts the other
            return self.cache.get(f"{entry.kind}:{entry.name}:{entry.path}",
                                  lambda: load_segmentation_model(entry, self.device))
        if entry.kind in (ModelKind.LAMA.value, ModelKind.MAT.value):
            from sfumato.core.models.fill_loader import load_fill_model

            return self.cache.get(f"fill:{entry.name}",
                                  lambda: load_fill_model(Path(entry.path), self.device))
        if entry.kind == ModelKind.SUPIR.value:
            return self.cache.get(f"supir:{entry.name}:{entry.path}", lambda: self._supir(entry))
        if entry.kind != ModelKind.UPSCALER.value:
            raise SfumatoError(ErrorCode.INTERNAL, f"{entry.kind} models load as pipelines")
        from sfumato.core.models.upscaler_loader import load_upscaler

        def load_now() -> Any:
            model = load_upscaler(Path(entry.path), allow_pickle=self.settings.allow_pickle,
                                  device=self.device)
            return prepare_upscaler(model, self.speed)

        return self.cache.get(f"upscaler:{entry.name}", load_now)

    def _supir(self, entry: ModelEntry) -> Any:
        """SUPIR's own tensors, on the device in the dtype its SDXL base runs in."""
        from sfumato.core.device.speed_options import pipeline_dtype
        from sfumato.core.diffusion.supir.checkpoint import load_supir_weights

        dtype = pipeline_dtype(self.speed, self.device, ModelKind.SDXL.value)
        return load_supir_weights(Path(entry.path), self.device, dtype)

    def load_pipeline(self, entry: ModelEntry, task: str, masked: bool = False) -> Any:
        from sfumato.core.models.diffusion_loader import load_pipeline

        pipe = self.cache.get(
            f"{entry.name}:{task}" + (":masked" if masked else ""),
            lambda: load_pipeline(entry, task, self.device, self._shared, self.speed, masked),
        )
        if self.low_memory:
            _lean(pipe, self.device)
        return pipe

    def degrade(self) -> None:
        """After running out of memory: drop every loaded model (none is in use between
        jobs) and load later pipelines leaner (VAE tiles; on CUDA, CPU offload)."""
        self.cache.clear()
        self._shared.clear()
        self.low_memory = True

    def load_guide(self, entry: ModelEntry, unet_config: Any = None) -> Any:
        """A ControlNet, T2I-Adapter, image encoder or preprocessor model, cached by id.
        `unet_config`: the UNet a single-file ControlNet runs beside (it gives its config)."""
        from sfumato.core.models.guide_loader import load_guide_model

        key = f"guide:{entry.name}:{entry.path}"
        if unet_config is not None and entry.format == ModelFormat.SINGLE_FILE.value:
            key += f":{_config_digest(unet_config)}"  # one file may fit several base models
        return self.cache.get(key, lambda: load_guide_model(entry, self.device, unet_config))

    def ip_adapter_weights(self, entry: ModelEntry) -> dict[str, dict[str, Any]]:
        """An IP-Adapter's tensors ({"image_proj": ..., "ip_adapter": ...}, the state dict
        diffusers' load_ip_adapter takes), read once and kept with the other models."""
        from sfumato.core.models.guide_loader import read_ip_adapter

        return self.cache.get(f"ip-adapter:{entry.name}:{entry.path}",  # type: ignore[no-any-return]
                              lambda: read_ip_adapter(Path(entry.path)))

    def candidates(self, kinds: frozenset[str]) -> list[ModelEntry]:
        """Every registered model of one of `kinds`, by name."""
        return sorted((e for e in self.registry.entries() if e.kind in kinds),
                      key=lambda e: e.name)

    def describe(self) -> dict[str, Any]:
        return {"loaded": self.cache.keys(), "cache_bytes": self.cache.used_bytes,
                "loads": self.cache.loads}


def _lean(pipe: Any, device: str) -> None:
    vae = getattr(pipe, "vae", None)
    if vae is not None and hasattr(vae, "enable_tiling"):
        vae.enable_tiling()
    if device == "cuda" and hasattr(pipe, "enable_model_cpu_offload") and not getattr(
        pipe, "_sfumato_offloaded", False
    ):
        try:
            pipe.enable_model_cpu_offload()
            pipe._sfumato_offloaded = True
        except (ImportError, RuntimeError, ValueError):  # accelerate missing or too old
            pass


def _config_digest(config: Any) -> str:
    import hashlib
    import json

    text = json.dumps(dict(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _model_bytes(model: Any) -> int:
    from sfumato.core.models.diffusion_loader import pipeline_bytes

    if isinstance(model, dict):  # a state dict, or a dict of them (an IP-Adapter's parts)
        return sum(_model_bytes(v) if isinstance(v, dict) else v.numel() * v.element_size()
                   for v in model.values())
    if hasattr(model, "components"):
        return pipeline_bytes(model)
    if isinstance(getattr(model, "nbytes", None), int):  # e.g. SUPIR's weights
        return int(model.nbytes)
    module = getattr(model, "model", model)
    params = getattr(module, "parameters", None)
    if params is None:
        return 0
    return sum(p.numel() * p.element_size() for p in params())
