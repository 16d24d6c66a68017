"""Which kept results their client has confirmed it read, so the daemon can drop them.

A client on this machine reads a result from the daemon's memory files and, once every view
of them is gone, says so in a later message (bridge.shared_pixels). That is a receipt: the
plug-in has the pixels and has finished with them, so keeping the result for a re-fetch
only holds memory (and the worker's memory file, which could be reused for the next job).
Results that went out as frames get no receipt and stay until the store's own bounds.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

MAX_TRACKED = 4096  # results awaiting a receipt; the oldest are simply kept until they expire


@dataclass
class ResultReceipts:
    _by_token: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    _waiting: OrderedDict[str, set[str]] = field(default_factory=OrderedDict)

    def sent(self, job_id: str, owner: bytes, tokens: list[str]) -> None:
        """A result went to `owner` in these memory files."""
        if not tokens:
            return
        self._waiting[job_id] = set(tokens)
        for token in tokens:
            self._by_token[token] = (owner, job_id)
        while len(self._waiting) > MAX_TRACKED:
            _, dropped = self._waiting.popitem(last=False)
            for token in dropped:
                self._by_token.pop(token, None)

    def released(self, owner: bytes, tokens: list[str]) -> list[str]:
        """`owner` let go of these files: the jobs whose every result file it has now
        released. Another client's tokens count for nothing."""
        finished = []
        for token in tokens:
            sender = self._by_token.get(token)
            if sender is None or sender[0] != owner:
                continue
            del self._by_token[token]
            job_id = sender[1]
            waiting = self._waiting.get(job_id)
            if waiting is None:
                continue
            waiting.discard(token)
            if not waiting:
                del self._waiting[job_id]
                finished.append(job_id)
        return finished
