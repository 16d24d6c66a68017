from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_process import DaemonProcess, start_daemon

DATA = Path(__file__).parent / "data"


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    """A fresh daemon with an empty model store, stopped after the test."""
    process = start_daemon(tmp_path / "home")
    yield process
    process.stop()
