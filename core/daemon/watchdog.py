"""When a running backend counts as hung or stuck (the server kills and replaces it)."""

from __future__ import annotations

from sfumato.core.config import Settings
from sfumato.core.worker.dispatch import Dispatcher


def hang_reason(settings: Settings, worker: Dispatcher) -> str | None:
    """A worker running a job that sends nothing, not even its heartbeat, for
    `worker_watchdog_s` is hung (stopped, deadlocked); one whose job sends no event for
    `job_stall_s` is stuck (e.g. a device call that never returns). None: neither."""
    silent, stalled = worker.silent_for(), worker.stalled_for()
    if 0 < settings.worker_watchdog_s < silent:
        return (f"the worker stopped answering for {silent:.0f} s "
                f"(worker_watchdog_s = {settings.worker_watchdog_s:g})")
    if 0 < settings.job_stall_s < stalled:
        return (f"the job made no progress for {stalled:.0f} s "
                f"(job_stall_s = {settings.job_stall_s:g})")
    return None
