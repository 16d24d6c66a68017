"""pytest fixtures for controls and image prompts: a model store holding the tiny pipelines of
tests/support/tiny_fixtures.py plus tiny ControlNets, a T2I-Adapter, IP-Adapters and their image
encoder, depth and pose preprocessor models, each registered through the real
`sfumato models add` code, and a provider over it.

Test modules load them with
`pytest_plugins = ["tests.support.tiny_fixtures", "tests.support.guide_fixtures"]`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.tiny_models import (
    build_tiny_controlnet,
    build_tiny_depth_estimator,
    build_tiny_flux_controlnet,
    build_tiny_image_encoder,
    build_tiny_ip_adapter,
    build_tiny_pose_estimator,
    build_tiny_t2i_adapter,
)

# id -> the kind `sfumato models add` must detect
GUIDES = {
    "canny-sdxl": "controlnet",
    "depth-sdxl": "controlnet",
    "dpt-depth": "depth-estimator",
    "vitpose": "pose-estimator",
    "canny-flux": "controlnet",
    "lineart-sdxl": "t2i-adapter",
    "canny-sd15": "controlnet",
    "scribble-sd15": "controlnet",
    "clip-vision": "image-encoder",
    "ip-adapter-sdxl": "ip-adapter",
    "ip-plus-face-sdxl": "ip-adapter",
}
PIPELINES = ("sdxl-inpaint", "sdxl", "sd15-inpaint", "sd15", "flux-fill", "flux")


@pytest.fixture(scope="session")
def guide_home(tiny_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sfumato.core.models.model_add import register_model
    from sfumato.core.models.registry import Registry

    home = tmp_path_factory.mktemp("guide-home")
    store = home / "store"
    registry = Registry(home)
    for kind in PIPELINES:  # the same tiny pipeline folders, registered here too
        register_model(registry, kind, tiny_home / "models" / "diffusers" / kind)
    sdxl_models = store / "sdxl_models"  # the layout IP-Adapter releases use
    build_tiny_image_encoder(sdxl_models / "image_encoder")
    made = {
        "canny-sdxl": build_tiny_controlnet("sdxl", store / "canny-sdxl"),
        "depth-sdxl": build_tiny_controlnet("sdxl", store / "depth-sdxl", seed=6),
        "dpt-depth": build_tiny_depth_estimator(store / "dpt-depth"),
        "vitpose": build_tiny_pose_estimator(store / "vitpose-tiny"),
        "canny-flux": build_tiny_flux_controlnet(store / "canny-flux"),
        "lineart-sdxl": build_tiny_t2i_adapter(store / "t2i-lineart-sdxl"),
        "canny-sd15": build_tiny_controlnet("sd15", store / "canny-sd15"),
        "scribble-sd15": build_tiny_controlnet("sd15", store / "scribble-sd15", seed=5),
        "clip-vision": sdxl_models / "image_encoder",
        "ip-adapter-sdxl": build_tiny_ip_adapter(
            "sdxl", sdxl_models / "ip-adapter_sdxl.safetensors"),
        "ip-plus-face-sdxl": build_tiny_ip_adapter(
            "sdxl", store / "ip-adapter-plus-face_sdxl.safetensors", plus=True),
    }
    for name, path in made.items():
        entry = register_model(registry, name, path)
        assert entry.kind == GUIDES[name], (name, entry)
    return home


@pytest.fixture(scope="session")
def guide_provider(guide_home: Path) -> Any:
    import torch
    from sfumato.core.config import Settings
    from sfumato.core.models.provider import WorkerModels

    torch.set_num_threads(1)
    return WorkerModels(Settings(home=guide_home, endpoint="tcp://127.0.0.1:0"), "cpu")


@pytest.fixture
def guided_context(guide_provider: Any) -> Callable[..., Any]:
    """make_context over the guide store: guided_context(params, rasters, model_id, ...)."""
    from sfumato.core.task_api import TaskContext

    def build(params: dict[str, Any], rasters: list[Any], model_id: str | None,
              **extra: Any) -> TaskContext:
        extra.setdefault("models", guide_provider)
        return TaskContext(params=params, rasters=rasters, model_id=model_id, **extra)

    return build
