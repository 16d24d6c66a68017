"""What the daemon process may take: the largest frame a client may send, and the open files
its shared-memory mappings need."""

from __future__ import annotations

import resource

from sfumato.core.config import Settings


def max_frame_bytes(settings: Settings) -> int:
    """The largest frame a client may send: the largest allowed raster (RGBA float) plus
    room for the JSON frames. zmq disconnects a peer that sends more."""
    return settings.max_pixels * 16 + (1 << 20)


def raise_open_files_limit() -> None:
    """Every shared-memory mapping holds a descriptor (bounded per client and in all, see
    MappingCache): take what the system allows, so the bounds, not 1,024, decide."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = max(soft, 1 << 16) if hard == resource.RLIM_INFINITY else hard
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass  # keep the soft limit
