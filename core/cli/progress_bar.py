"""A one-line progress bar on stderr, fed by job events."""

from __future__ import annotations

import sys
from typing import TextIO

from sfumato.bridge.protocol import Message, Progress
from sfumato.bridge.raster import Raster


class ProgressBar:
    def __init__(self, label: str, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.label = label
        self.stream = stream
        self.width = width
        self.interactive = stream.isatty()
        self._last = -1

    def __call__(self, message: Message, _rasters: list[Raster]) -> None:
        if not isinstance(message, Progress) or message.total <= 0:
            return
        done = int(self.width * message.step / message.total)
        percent = int(100 * message.step / message.total)
        if not self.interactive and percent // 25 == self._last // 25:
            return  # logs get a line per quarter, not a line per step
        self._last = percent
        bar = "#" * done + "." * (self.width - done)
        end = "\r" if self.interactive else "\n"
        counts = f"{message.step}/{message.total}"
        self.stream.write(f"{self.label} [{bar}] {counts} {message.stage}{end}")
        self.stream.flush()

    def finish(self) -> None:
        if self.interactive:
            self.stream.write("\n")
