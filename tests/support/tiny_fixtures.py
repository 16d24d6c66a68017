"""pytest fixtures over the tiny diffusion models: a model store holding one of each kind,
registered in a real registry, and the worker's real model provider loading them through the
real loader. Built once per session (well under a second each).

Test modules load them with `pytest_plugins = ["tests.support.tiny_fixtures"]` (or the root conftest
can, for every test).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.tiny_models import KINDS, build_tiny_model


@pytest.fixture(scope="session")
def tiny_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SFUMATO_HOME whose registry names one tiny model per kind, by the kind's name."""
    from sfumato.core.models.diffusion_loader import detect_diffusion_kind
    from sfumato.core.models.registry import ModelEntry, Registry

    home = tmp_path_factory.mktemp("tiny-home")
    registry = Registry(home)
    for kind in KINDS:
        folder = build_tiny_model(kind, home / "models" / "diffusers" / kind)
        detected = detect_diffusion_kind(folder)
        assert detected == (kind, "diffusers"), detected
        registry.add(ModelEntry(name=kind, kind=kind, path=str(folder), format=detected[1]))
    return home


@pytest.fixture(scope="session")
def tiny_provider(tiny_home: Path) -> Any:
    """The worker's model provider over `tiny_home`, on the CPU; pipelines stay cached."""
    import torch
    from sfumato.core.config import Settings
    from sfumato.core.models.provider import WorkerModels

    # one thread: on two shared cores, two threads make tiny models 5-50x slower (contention)
    torch.set_num_threads(1)
    settings = Settings(home=tiny_home, endpoint="tcp://127.0.0.1:0")
    return WorkerModels(settings, "cpu")


@pytest.fixture
def make_context(tiny_provider: Any) -> Callable[..., Any]:
    """Build a TaskContext on the tiny provider: make_context(params, rasters, model_id, ...);
    keyword arguments (progress, cancel, models...) go to TaskContext."""
    from sfumato.core.task_api import TaskContext

    def build(params: dict[str, Any], rasters: list[Any], model_id: str | None,
              **extra: Any) -> TaskContext:
        extra.setdefault("models", tiny_provider)
        return TaskContext(params=params, rasters=rasters, model_id=model_id, **extra)

    return build
