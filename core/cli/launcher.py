"""Find a daemon that answers, or start one in the background and wait until it does."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from sfumato.bridge.client import Client, DaemonUnavailable
from sfumato.core.config import Settings

START_TIMEOUT_S = 60.0
AUTO_IDLE_EXIT_S = 600.0  # a daemon the CLI started goes away when nobody uses it


def daemon_answers(endpoint: str, timeout_s: float = 1.0) -> bool:
    with Client(endpoint, timeout_s=timeout_s) as client:
        try:
            client.ping(timeout_s=timeout_s)
            return True
        except DaemonUnavailable:
            return False


def connect_or_start(settings: Settings, *, quiet: bool = False) -> Client:
    """A client connected to a live daemon; starts one when none answers."""
    if not daemon_answers(settings.endpoint):
        start_daemon(settings, quiet=quiet)
    return Client(settings.endpoint, timeout_s=30.0)


def start_daemon(settings: Settings, *, quiet: bool = False) -> None:
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    if not quiet:
        print(f"starting a sfumato daemon on {settings.endpoint} …", file=sys.stderr)
    with open(logs / "daemon.out", "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "sfumato.core", "--endpoint", settings.endpoint, "serve",
             "--idle-exit", str(AUTO_IDLE_EXIT_S)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
            env={**os.environ, "SFUMATO_HOME": str(settings.home)},
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DaemonUnavailable(
                "daemon_unavailable",
                f"the daemon exited at start (code {process.returncode}); "
                f"see {logs / 'daemon.out'}",
            )
        if daemon_answers(settings.endpoint, timeout_s=0.5):
            return
    raise DaemonUnavailable("daemon_unavailable",
                            f"the daemon did not answer within {START_TIMEOUT_S:.0f} s; "
                            f"see {logs / 'daemon.out'}")
