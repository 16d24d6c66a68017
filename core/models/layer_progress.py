"""Progress from inside one forward pass: a callback after each convolution of a network, so
a pass that takes minutes on a CPU still says how far it got (and can stop between layers).

Only for eager modules: hooks on a compiled module's layers would break its graph, and on a
GPU a pass is short enough to report once at its end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import torch


class LayerHooks:
    """While entered, `on_layer()` runs after every convolution of `module`. `layers` is how
    many calls one forward pass makes, counting each convolution once (the upscalers here
    run each layer once per pass)."""

    def __init__(self, module: torch.nn.Module, on_layer: Callable[[], None]) -> None:
        self.module = module
        self.on_layer = on_layer
        self.layers = sum(1 for layer in module.modules() if isinstance(layer, _CONVOLUTIONS))
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> LayerHooks:
        for layer in self.module.modules():
            if isinstance(layer, _CONVOLUTIONS):
                self._handles.append(layer.register_forward_hook(self._after))
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 trace: TracebackType | None) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _after(self, *_: Any) -> None:
        self.on_layer()


class PieceProgress:
    """Progress over `pieces` (tiles) of `layers` steps each, `pieces * layers` in all: sent
    after every piece and, within one, at most every `every_s` seconds; `check` runs
    between layers (a cancel raises there)."""

    def __init__(self, pieces: int, report: Callable[[int, int], None],
                 check: Callable[[], None], every_s: float) -> None:
        self.pieces, self.layers = pieces, 1
        self.report, self.check, self.every_s = report, check, every_s
        self.done = self.in_piece = 0  # layers of finished pieces; of the running one
        self.sent = time.monotonic()

    def layer(self) -> None:
        self.check()
        self.in_piece = min(self.in_piece + 1, self.layers - 1)  # its end is pieces_done's
        if time.monotonic() - self.sent >= self.every_s:
            self._send()

    def pieces_done(self, count: int) -> None:
        self.done += count * self.layers
        self.in_piece = 0
        self._send()

    def _send(self) -> None:
        self.sent = time.monotonic()
        self.report(self.done + self.in_piece, self.pieces * self.layers)


_CONVOLUTIONS = (torch.nn.Conv2d, torch.nn.ConvTranspose2d)


def hookable(module: Any, device: torch.device) -> bool:
    """Whether per-layer progress is worth having and safe: an eager module on the CPU."""
    return (device.type == "cpu" and isinstance(module, torch.nn.Module)
            and not getattr(module, "_sfumato_compiled", False))
