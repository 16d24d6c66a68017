"""Reply bytes a client has not read yet, so a client that never reads cannot make the
daemon hold pixels without end.

Frames queued in zmq for a slow reader are followed with zmq's message trackers (done once
zmq has handed them to the kernel); reply files in shared memory count until the client
releases them (DaemonPixels.backlog).
"""

from __future__ import annotations

from collections import deque

import zmq


class ReplyBacklog:
    def __init__(self) -> None:
        self._queued: dict[bytes, deque[tuple[zmq.MessageTracker, int]]] = {}

    def note(self, identity: bytes, tracker: zmq.MessageTracker, nbytes: int) -> None:
        self._queued.setdefault(identity, deque()).append((tracker, nbytes))

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
