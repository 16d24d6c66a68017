"""`sfumato stop`: stop the daemon on this machine, gracefully (as SIGTERM does)."""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path

from sfumato.bridge.client import Client, DaemonUnavailable
from sfumato.bridge.endpoints import is_loopback
from sfumato.bridge.protocol import ErrorCode
from sfumato.core.config import load_settings
from sfumato.core.errors import SfumatoError

EXTRA_WAIT_S = 15.0  # beyond stop_timeout_s: the cancelled job's last step, the worker's exit


def register(verbs: argparse._SubParsersAction) -> None:
    cmd = verbs.add_parser(
        "stop", help="stop the daemon (the running job gets stop_timeout_s to finish)",
        description="Stop the daemon at SFUMATO_ENDPOINT on this machine, as SIGTERM does: "
        "it takes no new work, tells waiting clients, lets the running job finish within "
        "stop_timeout_s (config.toml), then exits. Only your own daemon can be stopped.")
    cmd.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.endpoint)
    if not is_loopback(settings.endpoint):
        raise SfumatoError(ErrorCode.FORBIDDEN, f"{settings.endpoint} is not on this machine: "
                           "run `sfumato stop` on the machine the daemon runs on")
    with Client(settings.endpoint, timeout_s=2.0) as client:
        try:
            report = client.status()
        except DaemonUnavailable:
            print(f"no sfumato daemon answers at {settings.endpoint}: nothing to stop")
            return 0
    pid = int(report.worker["daemon_pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except PermissionError:
        raise SfumatoError(ErrorCode.FORBIDDEN, f"the daemon at {settings.endpoint} (pid {pid}) "
                           "belongs to another user: ask them, or its admin, to stop it") from None
    except ProcessLookupError:
        print("the daemon had just exited")
        return 0
    if report.running:
        print(f"stopping the daemon (pid {pid}); job {report.running['job_id']} gets up to "
              f"{settings.stop_timeout_s:.0f} s to finish …")
    deadline = time.monotonic() + settings.stop_timeout_s + EXTRA_WAIT_S
    while time.monotonic() < deadline:
        if not _alive(pid):
            print(f"stopped the daemon (pid {pid})")
            return 0
        time.sleep(0.1)
    raise SfumatoError(ErrorCode.TIMEOUT, f"the daemon (pid {pid}) is still running; "
                       f"`kill -9 {pid}` ends it at once (its running job is lost)")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:  # an exited child not yet reaped by its parent (e.g. a test) is gone too
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
