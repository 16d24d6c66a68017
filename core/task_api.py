"""What a task receives and returns. Tasks know nothing of sockets or processes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sfumato.bridge.raster import Raster
from sfumato.core.errors import JobCancelled
from sfumato.core.models.registry import ModelEntry


class CancelFlag(Protocol):
    def is_set(self) -> bool: ...


@dataclass
class CancelToken:
    """Checked between tiles and denoising steps; raising ends the job as `cancelled`."""

    flag: CancelFlag | None = None

    def raise_if_cancelled(self) -> None:
        if self.flag is not None and self.flag.is_set():
            raise JobCancelled()


class ModelProvider(Protocol):
    def entry(self, model_id: str | None, kinds: frozenset[str], default: str | None) -> ModelEntry:
        """The registry entry for `model_id` (or the default), checked to be of one of `kinds`."""
        ...

    def load(self, entry: ModelEntry) -> Any:
        """The loaded upscaler for `entry`, from the cache when it is there."""
        ...

    def load_pipeline(self, entry: ModelEntry, task: str, masked: bool = False) -> Any:
        """A diffusers pipeline for `entry` shaped for `task`, sharing cached components;
        `masked`: the job has a selection (the family's inpaint variant where it has one)."""
        ...

    def load_guide(self, entry: ModelEntry, unet_config: Any = None) -> Any:
        """A ControlNet, T2I-Adapter, image encoder or preprocessor model, cached.
        `unet_config`: the UNet a single-file ControlNet runs beside (it gives its config)."""
        ...

    def ip_adapter_weights(self, entry: ModelEntry) -> dict[str, dict[str, Any]]:
        """An IP-Adapter file's tensors, as diffusers' load_ip_adapter takes them, cached."""
        ...

    def candidates(self, kinds: frozenset[str]) -> list[ModelEntry]:
        """Every registered model of one of `kinds`, by name."""
        ...


@dataclass
class Limits:
    max_pixels: int = 16384 * 16384
    max_output_pixels: int = 32768 * 32768


@dataclass
class TaskContext:
    params: dict[str, Any]
    rasters: list[Raster]
    model_id: str | None
    models: ModelProvider
    device: str = "cpu"
    limits: Limits = field(default_factory=Limits)
    progress: Callable[[int, int, str], None] = lambda step, total, stage: None
    preview: Callable[[Raster, int], None] = lambda raster, step: None
    cancel: CancelToken = field(default_factory=CancelToken)


@dataclass
class TaskOutput:
    rasters: list[Raster]
    info: dict[str, Any] = field(default_factory=dict)
