"""The plug-in side never hangs the artist's editor: against a frozen (SIGSTOP) or dead daemon
every request ends with a readable error, and closing the client, even with a large layer
still unsent, returns and lets the host's Python exit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sfumato.bridge.client import DaemonUnavailable
from sfumato.bridge.raster import Layout, Raster
from sfumato.bridge.transport import LINGER_MS

from tests.support.daemon_process import DaemonProcess

pytestmark = pytest.mark.integration

# What a plug-in does: connect, send a 64 MB layer, give up, close, and its Python exits.
HOST_SCRIPT = """
import json, sys, time
from sfumato.bridge.client import Client, DaemonUnavailable
from sfumato.bridge.raster import Layout, Raster
client = Client(sys.argv[1], timeout_s=1.0, reconnects=0)
layer = Raster(4096, 4096, Layout.RGBA8, bytes(4096 * 4096 * 4))
outcome = "answered"
try:
    client.submit("upscale", {}, [layer], "tiny")
except DaemonUnavailable as exc:
    outcome = exc.message
started = time.perf_counter()
client.close()
print(json.dumps({"outcome": outcome, "close_s": time.perf_counter() - started}))
"""


def _host_python(daemon: DaemonProcess) -> dict:
    """Run the plug-in's part in its own interpreter (with the daemon's SFUMATO_HOME, where
    its keys are); the bound only turns a hang into a failure, it is not a speed assertion
    (bench/client_close.py measures)."""
    done = subprocess.run([sys.executable, "-c", HOST_SCRIPT, daemon.endpoint],
                          capture_output=True, text=True, timeout=60, env=daemon.env())
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_frozen_daemon_never_hangs_the_host(daemon: DaemonProcess) -> None:
    with daemon.client(timeout_s=1.0) as client:
        client.ping()
        assert 0 <= client._transport.linger_ms <= 100 and LINGER_MS <= 100
        os.kill(daemon.process.pid, signal.SIGSTOP)
        try:
            with pytest.raises(DaemonUnavailable) as frozen:
                client.status()
            assert "sfumato serve" in frozen.value.message
            host = _host_python(daemon)
            assert "sfumato serve" in host["outcome"]  # the plug-in got a readable error
        finally:
            os.kill(daemon.process.pid, signal.SIGCONT)
        client.ping()  # thawed, the same client carries on


def test_a_dead_daemon_never_hangs_the_host(tmp_path: Path) -> None:
    from tests.support.daemon_process import start_daemon

    daemon = start_daemon(tmp_path / "home")
    client = daemon.client(timeout_s=1.0)
    client.ping()
    os.killpg(daemon.process.pid, signal.SIGKILL)
    daemon.process.wait(timeout=30)
    with pytest.raises(DaemonUnavailable):
        client.status()
    client.close()
    host = _host_python(daemon)
    assert "sfumato serve" in host["outcome"]
    layer = Raster(64, 64, Layout.RGBA8, bytes(64 * 64 * 4))
    with daemon.client(timeout_s=0.5) as late, pytest.raises(DaemonUnavailable):
        late.submit("upscale", {}, [layer], "tiny")
