"""`sfumato cancel`: stop a job one of your `sfumato` commands started, or all of them."""

from __future__ import annotations

import argparse
import time

from sfumato.bridge.client import Client, DaemonUnavailable
from sfumato.bridge.protocol import ErrorCode, JobState
from sfumato.core.cli.launcher import cli_client
from sfumato.core.config import load_settings
from sfumato.core.errors import SfumatoError

STOP_WAIT_S = 15.0  # a running job stops at its next tile or step


def register(verbs: argparse._SubParsersAction) -> None:
    cmd = verbs.add_parser(
        "cancel", help="cancel a job your sfumato commands started",
        description="Cancel a waiting or running job (ids as `sfumato status` shows them). "
        "Only jobs of this user's sfumato commands (same SFUMATO_HOME) can be cancelled here; "
        "a plug-in's job is cancelled in its editor. A running job stops at its next tile or "
        "step; this waits for that.")
    which = cmd.add_mutually_exclusive_group(required=True)
    which.add_argument("job", nargs="?", help="the job id")
    which.add_argument("--all-mine", action="store_true", help="every job of yours")
    cmd.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.endpoint)
    with cli_client(settings, "cancel", timeout_s=5.0) as client:
        try:
            report = client.status()
        except DaemonUnavailable:
            print(f"no sfumato daemon answers at {settings.endpoint}: nothing to cancel")
            return 1
        jobs = ([report.running] if report.running else []) + list(report.queued)
        if args.all_mine:
            ids = [job["job_id"] for job in jobs if job.get("mine")]
            if not ids:
                print("none of your jobs is waiting or running")
                return 0
        else:
            ids = [args.job]
        running = [_cancel(client, job_id) for job_id in ids]
        for job_id in filter(None, running):
            _wait_until_stopped(client, job_id)
    return 0


def _cancel(client: Client, job_id: str) -> str | None:
    """Cancel one job; returns its id when it was running (it stops a moment later)."""
    state = client.cancel(job_id).state
    if state == JobState.CANCELLED.value:
        print(f"cancelled {job_id} (it was waiting)")
        return None
    if state == JobState.RUNNING.value:
        print(f"cancelling {job_id}: it stops at its next tile or step …")
        return job_id
    if state == "unknown":
        raise SfumatoError(ErrorCode.NOT_FOUND, f"no job {job_id} is waiting or running "
                           "(`sfumato status` lists them)")
    print(f"{job_id} had already ended ({state})")
    return None


def _wait_until_stopped(client: Client, job_id: str) -> None:
    deadline = time.monotonic() + STOP_WAIT_S
    while time.monotonic() < deadline:
        running = client.status().running
        if not running or running["job_id"] != job_id:
            print(f"cancelled {job_id}")
            return
        time.sleep(0.2)
    print(f"{job_id} has not stopped yet after {STOP_WAIT_S:.0f} s; `sfumato status` shows it")
