"""A real daemon process on a free loopback port, for integration and host tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sfumato.bridge.client import Client, DaemonUnavailable
from sfumato.bridge.endpoints import needs_curve
from sfumato.bridge.transport import local_keys
from sfumato.core.daemon.keys import ensure_local_keys


def free_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{sock.getsockname()[1]}"


@dataclass
class DaemonProcess:
    endpoint: str
    home: Path
    process: subprocess.Popen
    extra_env: dict[str, str] = field(default_factory=dict)
    client_defaults: dict[str, Any] = field(default_factory=dict)  # e.g. CURVE keys

    def client(self, **kwargs) -> Client:
        return Client(self.endpoint, **{"timeout_s": 30.0, **self.client_defaults, **kwargs})

    def curve_options(self) -> dict[str, bytes]:
        """Socket options that let a raw DEALER in (this user's keys in the daemon's home),
        e.g. `RawPeer(daemon.endpoint, **daemon.curve_options())`."""
        keys = self.client_defaults.get("curve")
        if keys is None:
            return {}
        return {"CURVE_SERVERKEY": keys.server_public, "CURVE_PUBLICKEY": keys.client_public,
                "CURVE_SECRETKEY": keys.client_secret}

    def env(self) -> dict[str, str]:
        return {**os.environ, "SFUMATO_HOME": str(self.home), "SFUMATO_ENDPOINT": self.endpoint,
                **self.extra_env}

    def add_model(self, name: str, path: Path) -> None:
        """Register a model the way an admin does (`sfumato models add`)."""
        subprocess.run([sys.executable, "-m", "sfumato.core", "models", "add", name, str(path)],
                       env=self.env(), check=True, capture_output=True)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def start_daemon(
    home: Path,
    extra_config: str = "",
    endpoint: str | None = None,
    *,
    bind: str | None = None,
    extra_env: dict[str, str] | None = None,
    client_defaults: dict[str, Any] | None = None,
) -> DaemonProcess:
    """`endpoint` is where clients connect; the daemon binds `bind` (default: the same)."""
    home.mkdir(parents=True, exist_ok=True)
    if extra_config:
        (home / "config.toml").write_text("[daemon]\n" + extra_config)
    endpoint = endpoint or free_endpoint()
    if needs_curve(endpoint):
        # the keys the daemon makes on its first start, made first here (as every sfumato
        # command does) so that clients of this test process, whose SFUMATO_HOME is another,
        # are this user's programs to the daemon
        ensure_local_keys(home)
        client_defaults = {"curve": local_keys(home), **(client_defaults or {})}
    env = {**os.environ, "SFUMATO_HOME": str(home), "SFUMATO_ENDPOINT": bind or endpoint,
           **(extra_env or {})}
    log = open(home / "daemon.out", "wb")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        [sys.executable, "-m", "sfumato.core", "serve"], env=env, stdout=log, stderr=log,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )
    daemon = DaemonProcess(endpoint, home, process, dict(extra_env or {}),
                           dict(client_defaults or {}))
    deadline = time.monotonic() + 60
    with daemon.client(timeout_s=1.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"daemon exited: {(home / 'daemon.out').read_text()}")
            try:
                if client.status().worker.get("ready"):
                    return daemon
            except DaemonUnavailable:
                pass
            time.sleep(0.1)
    daemon.stop()
    raise RuntimeError("daemon did not become ready in 60 s")
