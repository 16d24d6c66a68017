"""What the docker says about the daemon, and which models go in which list. No Qt, no
Krita: the words an artist reads are tested on their own."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sfumato.bridge.protocol import ErrorCode, StatusReport
from sfumato.bridge.schema import DIFFUSION_KINDS, EDIT_KINDS, REMOVE_KINDS, SEGMENT, UPSCALE

CONNECTED, BUSY, ERROR = "connected", "busy", "error"
CHECKING = "checking"  # no answer yet (the first question is on its way)


@dataclass(frozen=True)
class DaemonState:
    state: str  # CONNECTED | BUSY | ERROR | CHECKING
    text: str
    diffusion_models: tuple[str, ...] = ()
    upscalers: tuple[str, ...] = ()
    removers: tuple[str, ...] = ()  # LaMa, MAT and inpaint models (remove)
    segmenters: tuple[str, ...] = ()  # SAM, SAM 2.1, SAM 3 (select object)


def from_report(report: StatusReport) -> DaemonState:
    diffusion = _ids(report.models, DIFFUSION_KINDS | EDIT_KINDS)  # edit models too
    upscalers = _ids(report.models, UPSCALE.model_kinds)  # GAN upscalers and SUPIR
    removers = _ids(report.models, REMOVE_KINDS)
    segmenters = _ids(report.models, SEGMENT.model_kinds)
    device = f" on {report.device}" if report.device else ""
    if report.running:
        task = report.running.get("task") or "a job"
        waiting = f", {len(report.queued)} waiting" if report.queued else ""
        return DaemonState(BUSY, f"busy: running {task}{waiting}{device}", diffusion,
                           upscalers, removers, segmenters)
    if not diffusion:
        return DaemonState(CONNECTED, f"connected{device}; no inpaint model yet: add one with "
                           "`sfumato models add NAME PATH`", diffusion, upscalers, removers,
                           segmenters)
    count = len(diffusion)
    return DaemonState(CONNECTED, f"connected{device}, {count} model{'s' * (count != 1)}",
                       diffusion, upscalers, removers, segmenters)


def from_error(code: str, message: str, endpoint: str) -> DaemonState:
    """What to show for a failed status request, decided by its ErrorCode value, never by
    the message's words."""
    if code == ErrorCode.MISSING_DEPENDENCY.value:
        return DaemonState(ERROR, "error: Krita's Python has no pyzmq; `sfumato plugins install "
                           "krita` says how to add it")
    if code == ErrorCode.DAEMON_UNAVAILABLE.value:
        return DaemonState(ERROR, f"error: no daemon at {endpoint}. Start one with "
                           "`sfumato serve` (or fix the address below)")
    return DaemonState(ERROR, f"error: {message.rstrip('. ')}. Check `sfumato status`")


def _ids(models: Iterable[Mapping[str, Any]], kinds: frozenset[str]) -> tuple[str, ...]:
    return tuple(sorted(str(m["id"]) for m in models if m.get("kind") in kinds and m.get("id")))
