from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon_process import DaemonProcess, start_daemon

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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """GPU-tier tests run only where CUDA is. Without it they are deselected (so a CPU run
    never counts them, as passed or as skipped), unless asked for with `-m gpu`: then each
    is reported skipped, with the reason."""
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu or _cuda_available():
        return
    asked = config.getoption("markexpr", "") or ""
    if "gpu" in asked and "not gpu" not in asked:
        reason = "needs a CUDA GPU and this machine has none (run it on the lent GPU machine)"
        for item in gpu:
            item.add_marker(pytest.mark.skip(reason=reason))
        return
    config.hook.pytest_deselected(items=gpu)
    items[:] = [item for item in items if not item.get_closest_marker("gpu")]


def pytest_report_header(config: pytest.Config) -> str:
    return f"gpu tier: {'CUDA available' if _cuda_available() else 'no CUDA, gpu tests deselected'}"


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())
