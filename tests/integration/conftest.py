from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon_process import DaemonProcess, start_daemon

INJECT = Path(__file__).resolve().parents[1] / "inject"  # see tests/inject/sitecustomize.py
HOSTILE_MAX_PIXELS = 65_536  # frames and messages up to 2 MiB of pixels: the tests stay small
HOSTILE_REPLY_BYTES = 4 << 20  # unread replies a client may have before echoes are refused


@pytest.fixture(scope="session")
def hostile_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """One daemon, with small bounds and the test-only fault injection, that the hostile-input
    tests share (each starts by asking nothing of the others but that it still serves)."""
    env = {"PYTHONPATH": os.pathsep.join([str(INJECT), os.environ.get("PYTHONPATH", "")])}
    process = start_daemon(tmp_path_factory.mktemp("hostile") / "home",
                           f"max_pixels = {HOSTILE_MAX_PIXELS}\n"
                           f"client_reply_bytes = {HOSTILE_REPLY_BYTES}\n", extra_env=env)
    yield process
    process.stop()
