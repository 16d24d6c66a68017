"""The one log line each job ends with: who, what, how long, how it ended."""

from __future__ import annotations

import time

from sfumato.bridge.protocol import Failed, Message
from sfumato.core.daemon.job_queue import Job


def job_line(job: Job, terminal: Message, now: float | None = None) -> str:
    now = time.monotonic() if now is None else now
    pixels = sum(r.width * r.height for r in job.rasters)
    what = f"{job.task} {job.model or '(default model)'} {pixels / 1e6:.2f} MP"
    if job.started_at is None:
        timing = f"never ran, waited {now - job.submitted_at:.1f} s"
    else:
        timing = (f"waited {job.started_at - job.submitted_at:.1f} s, "
                  f"ran {now - job.started_at:.1f} s")
    ended = terminal.TYPE.value
    if isinstance(terminal, Failed):
        ended = f"failed ({terminal.code}: {terminal.message[:120]})"
    return f"job {job.job_id} for {job.label or '?'}: {what}; {timing}; {ended}"
