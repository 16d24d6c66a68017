"""One job from the command line: progress on stderr, and Ctrl-C (or SIGTERM) cancels it.

The first Ctrl-C says goodbye to the daemon, which cancels this process's jobs, and waits up
to CANCEL_WAIT_S for the job's `cancelled` so the daemon is free when the prompt returns; a
second Ctrl-C leaves at once.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator, Sequence
from types import FrameType

from sfumato.bridge.client import (
    Client,
    DaemonUnavailable,
    Event,
    Job,
    JobCancelledError,
    JobFailed,
    JobOutcome,
)
from sfumato.bridge.protocol import TERMINAL_TYPES, Cancelled, ErrorCode, Failed, Result
from sfumato.bridge.raster import Raster
from sfumato.core.cli.progress_bar import ProgressBar

CANCEL_WAIT_S = 15.0


def interrupt_on_sigterm() -> None:
    """SIGTERM (a killed script, a closed terminal) takes the same way out as Ctrl-C."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_job(client: Client, task: str, params: dict, rasters: Sequence[Raster],
            model: str | None, label: str) -> JobOutcome:
    """Submit, show progress, return the result; failures raise typed errors."""
    bar = ProgressBar(label)
    job: Job | None = None
    try:
        job = client.submit(task, params, rasters, model)
        outcome = _outcome(client.events(job), bar)
    except KeyboardInterrupt:
        bar.finish()
        cancel_and_wait(client, job)
        raise
    bar.finish()
    return outcome


def _outcome(events: Iterator[Event], bar: ProgressBar) -> JobOutcome:
    seen = []
    for message, out in events:
        seen.append(message)
        bar(message, out)
        if isinstance(message, Result):
            return JobOutcome(message, out, seen)
        if isinstance(message, Failed):
            raise JobFailed(message.code, message.message)
        if isinstance(message, Cancelled):
            raise JobCancelledError(ErrorCode.INTERNAL, f"job {message.job_id} was cancelled "
                                    "(`sfumato cancel` or the daemon stopping)")
    raise JobFailed(ErrorCode.INTERNAL, "the job ended without a result")


def cancel_and_wait(client: Client, job: Job | None) -> None:
    """Cancel this client's jobs (goodbye) and wait briefly for the job's terminal event."""
    client.goodbye()  # first: even a second Ctrl-C right away leaves nothing running
    what = f"job {job.job_id}" if job is not None else "the job"
    print(f"\nsfumato: cancelling {what} (Ctrl-C again to leave at once) …", file=sys.stderr,
          flush=True)
    if job is None:
        return  # never accepted, or not known yet: the goodbye covers it
    client.timeout_s, client.reconnects = CANCEL_WAIT_S, 0
    deadline = time.monotonic() + CANCEL_WAIT_S
    try:
        for message, _ in client.events(job):
            if message.TYPE in TERMINAL_TYPES:
                ended = "cancelled" if isinstance(message, Cancelled) else message.TYPE.value
                print(f"sfumato: job {job.job_id} {ended}", file=sys.stderr)
                return
            if time.monotonic() > deadline:
                break
    except DaemonUnavailable:
        pass
    print(f"sfumato: job {job.job_id} did not confirm its cancel within {CANCEL_WAIT_S:.0f} s; "
          "`sfumato status` shows whether it still runs", file=sys.stderr)
