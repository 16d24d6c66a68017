"""The model registry (ids -> local sources) and the byte-bounded LRU model cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from sfumato.bridge.protocol import ErrorCode
from sfumato.core.errors import SfumatoError
from sfumato.core.models.cache import ModelCache
from sfumato.core.models.registry import ModelEntry, Registry

pytestmark = pytest.mark.unit


def test_registry_add_get_remove_and_unknown_id(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    entry = ModelEntry("sharp", "upscaler", str(tmp_path / "a.safetensors"), "safetensors")
    registry.add(entry)
    registry.add(ModelEntry("soft", "upscaler", str(tmp_path / "b.safetensors"), "safetensors"))
    assert Registry(tmp_path).get("sharp") == entry  # persisted, re-read from disk
    registry.add(ModelEntry("sharp", "upscaler", str(tmp_path / "c.safetensors"), "safetensors"))
    assert [e.name for e in registry.entries()] == ["soft", "sharp"]
    assert registry.get("sharp").path.endswith("c.safetensors")
    assert registry.remove("soft") and not registry.remove("soft")
    with pytest.raises(SfumatoError) as info:
        registry.get("soft")
    assert info.value.code is ErrorCode.UNKNOWN_MODEL
    assert "sharp" in info.value.message and "models add" in info.value.message


def test_a_damaged_registry_is_a_clear_error(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    registry.models_dir.mkdir(parents=True)
    registry.file.write_text("{not json")
    with pytest.raises(SfumatoError) as info:
        registry.entries()
    assert str(registry.file) in info.value.message


def test_cache_evicts_least_recently_used_by_bytes() -> None:
    loads: list[str] = []

    def loader(name: str):
        def load() -> str:
            loads.append(name)
            return name
        return load

    cache = ModelCache(budget_bytes=100, size_of=lambda name: {"a": 40, "b": 40, "c": 50}[name])
    cache.get("a", loader("a"))
    cache.get("b", loader("b"))
    cache.get("a", loader("a"))  # a is now the most recent
    cache.get("c", loader("c"))  # 130 > 100: b goes, not a
    assert cache.keys() == ["a", "c"]
    assert cache.used_bytes == 90
    assert loads == ["a", "b", "c"]


def test_a_model_larger_than_the_budget_still_runs_alone() -> None:
    cache = ModelCache(budget_bytes=10, size_of=lambda value: 50)
    cache.get("small", lambda: "x")
    assert cache.get("huge", lambda: "y") == "y"
    assert cache.keys() == ["huge"]
