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


def pytest_configure(config: pytest.Config) -> None:
    # This test process imports diffusers and spandrel itself (tiny models, task tests): an
    # unusable torchvision (PyPI's CUDA build beside a CPU torch) must look absent first,
    # exactly as it does in the daemon's worker.
    from sfumato.core.models.torchvision_guard import guard_torchvision

    guard_torchvision()
