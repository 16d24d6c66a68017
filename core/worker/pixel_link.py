"""Pixels between the daemon and its worker through memory files instead of the pipe.

A pipe moves a layer in 64 KiB pieces through the kernel and into fresh memory on the other
side: about 80 ms for a 4096² RGBA8 upscale result here, more than the job's own
conversions. Both processes are the same user's sfumato, so each side keeps a pool of
memory files (bridge.shared_pixels) and sends only references, as a same-machine client
does with the daemon; the codec and its checks are the same.

Each side is both writer and reader. A file it wrote stays busy until the other side says,
in a later message's header, that every view of it is gone (its pixels may sit in the
result store, or in a running job, for a while); it is then reused for the next raster of
that size, so a run of same-sized jobs pays for fresh pages once. A file not let go within
`keep_s` is retired (closed here; the reader's mapping keeps its pixels), and the reader is
told to forget its mapping. Once the worker idles, both sides let their free files and
mappings go (`idle`). A worker that died holds no views: `peer_restarted` frees everything
it had.
"""

from __future__ import annotations

import math
import time
from typing import Any

from sfumato.bridge.raster import Raster
from sfumato.bridge.shared_pixels import (
    HEADER_RELEASE,
    HEADER_RETIRED,
    KEEP_S,
    MAX_RELEASES,
    MIN_BYTES,
    ReadViews,
    SegmentPool,
    available,
    header_tokens,
)


class LinkPixels:
    """One side (daemon or worker) of the daemon-worker link's shared-memory pixels."""

    def __init__(self, min_bytes: int = MIN_BYTES, keep_s: float = KEEP_S) -> None:
        self.min_bytes = min_bytes
        self.keep_s = keep_s
        self.pool = SegmentPool()  # files written here
        self.peer_files = ReadViews()  # the peer's files, read here

    # --- codec hooks ----------------------------------------------------------------------

    def place(self, raster: Raster) -> dict[str, Any] | None:
        if raster.nbytes < self.min_bytes:
            return None
        self.pool.retire_busy_since(time.monotonic() - self.keep_s)
        return self.pool.take(raster.nbytes).fill(raster.data)

    def header_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        done = self.peer_files.take_done()
        if done:
            fields[HEADER_RELEASE] = done
        retired = [self.pool.retired.popleft()
                   for _ in range(min(MAX_RELEASES, len(self.pool.retired)))]
        if retired:
            fields[HEADER_RETIRED] = retired
        return fields

    def open(self, ref: Any, size: int) -> memoryview:
        return self.peer_files.open(ref, size)

    def note_header(self, header: dict[str, Any]) -> None:
        for token in header_tokens(header, HEADER_RELEASE):
            self.pool.release(token)
        for token in header_tokens(header, HEADER_RETIRED):
            self.peer_files.mappings.forget(token)

    # --- the link ---------------------------------------------------------------------------

    def has_news(self) -> bool:
        """Whether the peer has something to learn: files let go of here, or retired."""
        return self.peer_files.pending() or bool(self.pool.retired)

    def idle(self) -> None:
        """No job runs: let the free files go (the peer is told with the next message) and
        the mappings of the peer's files, so an idle daemon and worker hold no pixels."""
        self.pool.retire_free_since(math.inf)
        self.peer_files.mappings.clear()  # views still in use keep their own mapping

    def peer_restarted(self) -> None:
        """The other process died: none of its views are left, and its files are gone."""
        for token in self.pool.tokens():
            self.pool.release(token)
        self.peer_files.forget_done()
        self.peer_files.mappings.sweep()

    def close(self) -> None:
        self.pool.close()
        self.peer_files.mappings.clear()


def link_pixels(enabled: bool) -> LinkPixels | None:
    return LinkPixels() if enabled and available() else None

