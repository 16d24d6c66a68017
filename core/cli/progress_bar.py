"""A one-line progress bar on stderr, fed by job events, with the time left."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from sfumato.bridge.protocol import Message, Progress
from sfumato.bridge.raster import Raster

LOG_EVERY_S = 10.0  # without a terminal: a line per quarter, or this often


class ProgressBar:
    def __init__(self, label: str, stream: TextIO = sys.stderr, width: int = 30,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label = label
        self.stream = stream
        self.width = width
        self.interactive = stream.isatty()
        self._clock = clock
        self._last = -1
        self._last_line = 0.0
        self._origin: tuple[float, float] | None = None  # (time, fraction) of the first event
        self._drawn = False

    def __call__(self, message: Message, _rasters: list[Raster]) -> None:
        if not isinstance(message, Progress) or message.total <= 0:
            return
        now = self._clock()
        fraction = min(1.0, message.step / message.total)
        if self._origin is None:
            self._origin = (now, fraction)
        percent = int(100 * fraction)
        if not self.interactive and percent // 25 == self._last // 25 and (
                now - self._last_line < LOG_EVERY_S):
            return  # logs get a line per quarter (or every LOG_EVERY_S), not one per step
        self._last, self._last_line = percent, now
        done = int(self.width * fraction)
        bar = "#" * done + "." * (self.width - done)
        end = "\x1b[K\r" if self.interactive else "\n"  # clear the rest of a longer line
        left = self.eta(now, fraction)
        eta = f" ETA {format_seconds(left)}" if left is not None else ""
        self.stream.write(f"{self.label} [{bar}] {message.step}/{message.total} "
                          f"{message.stage}{eta}{end}")
        self.stream.flush()
        self._drawn = True

    def eta(self, now: float, fraction: float) -> float | None:
        """Seconds left at the pace since the first progress event (None until known)."""
        if self._origin is None:
            return None
        start, first = self._origin
        if fraction <= first or now <= start:
            return None
        return (now - start) / (fraction - first) * (1.0 - fraction)

    def finish(self) -> None:
        if self.interactive and self._drawn:
            self.stream.write("\n")
            self._drawn = False


def format_seconds(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
