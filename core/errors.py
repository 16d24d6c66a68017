"""Typed failures a job can end with. `SfumatoError` (the one root, bridge/errors.py) carries
a wire ErrorCode and a message saying what the artist or admin should do; the daemon turns it
into `rejected`/`failed` events."""

from __future__ import annotations

from sfumato.bridge.errors import SfumatoError

__all__ = ["JobCancelled", "SfumatoError", "error_detail"]


class JobCancelled(Exception):
    """Raised at a tile or step boundary once the job's cancel flag is set."""


def error_detail(exc: BaseException, limit: int = 200) -> str:
    """The first line of a library's error, short enough to quote in a message."""
    text = str(exc)
    return text.splitlines()[0][:limit] if text.strip() else type(exc).__name__
