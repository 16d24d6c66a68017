"""Find a daemon that answers, or start one in the background and wait until it does."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import uuid
from pathlib import Path

from sfumato.bridge.client import Client, DaemonSilent, DaemonUnavailable
from sfumato.bridge.endpoints import needs_curve
from sfumato.core.config import Settings
from sfumato.core.daemon.keys import ensure_local_keys

START_TIMEOUT_S = 60.0
AUTO_IDLE_EXIT_S = 600.0  # a daemon the CLI started goes away when nobody uses it


def daemon_answers(endpoint: str, timeout_s: float = 1.0) -> bool:
    with Client(endpoint, timeout_s=timeout_s) as client:
        try:
            client.ping(timeout_s=timeout_s)
            return True
        except DaemonSilent:
            raise  # the port is taken: starting a daemon there would fail
        except DaemonUnavailable:
            return False


def connect_or_start(settings: Settings, verb: str = "cli", *, quiet: bool = False) -> Client:
    """A client connected to a live daemon; starts one when none answers."""
    if needs_curve(settings.endpoint):
        # the keys the daemon would make on its first start, made now so that this client
        # can check whoever answers on the port against them
        ensure_local_keys(settings.home)
    if not daemon_answers(settings.endpoint):
        start_daemon(settings, quiet=quiet)
    return cli_client(settings, verb)


def cli_client(settings: Settings, verb: str, timeout_s: float = 30.0) -> Client:
    """A client labelled "sfumato VERB[pid]" whose id is in this user's command-line family:
    any `sfumato` process of this SFUMATO_HOME may cancel the jobs of another."""
    client_id = f"{cli_family(settings.home)}/{uuid.uuid4().hex[:12]}"
    return Client(settings.endpoint, timeout_s=timeout_s, name=f"sfumato {verb}",
                  client_id=client_id)


def cli_family(home: Path) -> str:
    """A random name kept in SFUMATO_HOME (readable by this user only): knowing it is what
    makes a job "mine" to the daemon, so it is never printed or logged."""
    path = home / "cli-family"
    try:
        text = path.read_text().strip()
        if text:
            return text
    except OSError:
        pass
    home.mkdir(parents=True, exist_ok=True)
    text = f"cli-{secrets.token_hex(12)}"
    draft = home / f".cli-family-{os.getpid()}"
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    try:
        os.link(draft, path)  # whole or not at all; the first of two racing processes wins
    except FileExistsError:
        text = path.read_text().strip()
    finally:
        draft.unlink()
    return text


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
