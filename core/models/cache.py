"""Loaded models, least recently used first out, bounded by bytes (a VRAM or RAM budget)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ModelCache:
    budget_bytes: int
    size_of: Callable[[Any], int]
    _items: OrderedDict[str, tuple[Any, int]] = field(default_factory=OrderedDict)
    loads: int = 0  # models loaded from disk so far (a warm job adds none)

    @property
    def used_bytes(self) -> int:
        return sum(size for _, size in self._items.values())

    def get(self, key: str, load: Callable[[], Any]) -> Any:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key][0]
        value = load()
        self.loads += 1
        size = self.size_of(value)
        # Evict before keeping the new one; a model bigger than the budget still runs alone.
        while self._items and self.used_bytes + size > self.budget_bytes:
            self._items.popitem(last=False)
        self._items[key] = (value, size)
        return value

    def keys(self) -> list[str]:
        return list(self._items)

    def clear(self) -> None:
        self._items.clear()
