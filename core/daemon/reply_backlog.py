"""Reply bytes a client has not read yet, so a client that never reads cannot make the
daemon hold pixels without end.

Frames queued in zmq for a slow reader are followed with zmq's message trackers (done once
zmq has handed them to the kernel); reply files in shared memory count until the client
releases them (DaemonPixels.backlog).
"""

from __future__ import annotations

from collections import deque

import zmq
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.raster import Raster
from sfumato.core.errors import SfumatoError


class ReplyBacklog:
    def __init__(self) -> None:
        self._queued: dict[bytes, deque[tuple[zmq.MessageTracker, int]]] = {}

    def note(self, identity: bytes, tracker: zmq.MessageTracker, nbytes: int) -> None:
        self._queued.setdefault(identity, deque()).append((tracker, nbytes))

    def check_echo(self, identity: bytes, rasters: list[Raster], held_in_files: int,
                   limit: int) -> None:
        """An echo may not take a client's unread replies (zmq's and `held_in_files`, its
        unreleased reply files) past `limit` bytes: RESOURCE_EXHAUSTED."""
        if not rasters:
            return
        held = self.queued_bytes(identity) + held_in_files
        wanted = sum(raster.nbytes for raster in rasters)
        if held + wanted > limit:
            raise SfumatoError(
                ErrorCode.RESOURCE_EXHAUSTED,
                f"this client has {held} bytes of replies it has not read or let go of, and "
                f"this echo adds {wanted}: over the daemon's {limit} per client; read (and "
                "drop) earlier replies first",
            )

    def queued_bytes(self, identity: bytes) -> int:
        """Pixel bytes of frames sent to this client that zmq still holds."""
        pending = self._queued.get(identity)
        if pending is None:
            return 0
        while pending and pending[0][0].done:
            pending.popleft()
        if not pending:
            del self._queued[identity]
            return 0
        return sum(nbytes for tracker, nbytes in pending if not tracker.done)

    def forget(self, identity: bytes) -> None:
        self._queued.pop(identity, None)

    def sweep(self) -> None:
        """Drop what zmq has sent, for every client (so gone clients leave nothing here)."""
        for identity in list(self._queued):
            self.queued_bytes(identity)
