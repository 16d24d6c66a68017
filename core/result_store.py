"""Finished jobs' terminal events, kept so a client that lost its connection can fetch them."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from sfumato.bridge.protocol import Message
from sfumato.bridge.raster import Raster


@dataclass
class ResultStore:
    max_bytes: int = 1 << 30
    _items: OrderedDict[str, tuple[Message, list[Raster]]] = field(default_factory=OrderedDict)
    _bytes: int = 0

    def put(self, job_id: str, message: Message, rasters: list[Raster]) -> None:
        size = sum(r.nbytes for r in rasters)
        self._items[job_id] = (message, rasters)
        self._bytes += size
        while self._bytes > self.max_bytes and len(self._items) > 1:
            _, (_, dropped) = self._items.popitem(last=False)
            self._bytes -= sum(r.nbytes for r in dropped)

    def get(self, job_id: str) -> tuple[Message, list[Raster]] | None:
        item = self._items.get(job_id)
        if item is not None:
            self._items.move_to_end(job_id)
        return item
