"""Finished jobs' terminal events, kept so a client that lost its connection can fetch them.

Bounded twice: by bytes (oldest dropped first) and by age (`keep_s`), so results nobody comes
back for do not hold memory forever. Each result remembers its owner and whether it reached
them, so a client that reconnects with the same id can be told what it missed.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from sfumato.bridge.protocol import Message
from sfumato.bridge.raster import Raster
from sfumato.core.daemon.client_names import same_owner


@dataclass
class StoredResult:
    owner: bytes
    message: Message
    rasters: list[Raster]
    stored_at: float
    delivered: bool = False
    owner_key: bytes = b""  # the CURVE key the owner proved (b"": no CURVE on its socket)

    @property
    def nbytes(self) -> int:
        return sum(r.nbytes for r in self.rasters)


@dataclass
class ResultStore:
    max_bytes: int = 1 << 30
    keep_s: float = 24 * 3600.0
    clock: Callable[[], float] = time.monotonic
    _items: OrderedDict[str, StoredResult] = field(default_factory=OrderedDict)
    _bytes: int = 0

    def put(self, job_id: str, message: Message, rasters: list[Raster],
            owner: bytes = b"", delivered: bool = False, owner_key: bytes = b"") -> None:
        self.expire()
        old = self._items.pop(job_id, None)
        if old is not None:
            self._bytes -= old.nbytes
        item = StoredResult(owner, message, rasters, self.clock(), delivered, owner_key)
        self._items[job_id] = item
        self._bytes += item.nbytes
        while self._bytes > self.max_bytes and len(self._items) > 1:
            _, dropped = self._items.popitem(last=False)
            self._bytes -= dropped.nbytes

    def get(self, job_id: str) -> tuple[Message, list[Raster]] | None:
        item = self.find(job_id)
        return None if item is None else (item.message, item.rasters)

    def find(self, job_id: str) -> StoredResult | None:
        self.expire()
        return self._items.get(job_id)

    def mark_delivered(self, job_id: str) -> None:
        item = self._items.get(job_id)
        if item is not None:
            item.delivered = True

    def forget(self, job_id: str) -> None:
        """Drop a result its client has confirmed it read."""
        item = self._items.pop(job_id, None)
        if item is not None:
            self._bytes -= item.nbytes

    def missed_by(self, owner: bytes, owner_key: bytes = b"") -> list[str]:
        """Job ids of kept results that never reached `owner`'s family (with `owner_key`),
        oldest first."""
        self.expire()
        return [job_id for job_id, item in self._items.items()
                if same_owner(item.owner, owner) and item.owner_key == owner_key
                and not item.delivered]

    def expire(self) -> None:
        cutoff = self.clock() - self.keep_s
        while self._items:
            job_id, oldest = next(iter(self._items.items()))
            if oldest.stored_at > cutoff:
                return
            del self._items[job_id]
            self._bytes -= oldest.nbytes

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return self._bytes
