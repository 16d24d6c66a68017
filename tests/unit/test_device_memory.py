"""Large CPU buffers are reused inside `reuse_freed_memory` instead of being mapped afresh."""

from __future__ import annotations

import platform
import resource

import pytest
import torch
from sfumato.core.device.memory import reuse_freed_memory

pytestmark = pytest.mark.unit


def _page_faults_of_churn() -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(6):
        buffer = torch.ones(32 << 20, dtype=torch.uint8)  # 32 MiB, written: every page touched
        del buffer
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
def test_freed_buffers_are_reused_inside_and_mapped_afresh_outside() -> None:
    outside = _page_faults_of_churn()
    with reuse_freed_memory():
        inside = _page_faults_of_churn()
    after = _page_faults_of_churn()
    pages = (32 << 20) // resource.getpagesize()
    assert outside >= 5 * pages  # every buffer faulted in anew
    assert inside <= 3 * pages  # the first (and a spare) faulted, the rest reused
    assert after >= 5 * pages  # the defaults are back
