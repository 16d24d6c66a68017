"""Large CPU buffers are reused inside `reuse_freed_memory` instead of being mapped afresh."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.unit

# A fresh interpreter: what earlier tests left in this process's heap must not count. The
# work is a small convolution stack at 512², the allocation pattern of an upscaler's pass
# (feature maps of several sizes, freed layer by layer), with each pass's page faults counted.
CHILD = textwrap.dedent(
    """
    import json, resource, torch
    from sfumato.core.device.memory import reuse_freed_memory
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(32, 48, 3, padding=1), torch.nn.PixelShuffle(4),
    ).eval()
    image = torch.rand(1, 3, 512, 512)
    def faults_of_passes():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        with torch.inference_mode():
            for _ in range(3):
                net(image)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    faults_of_passes()
    outside = faults_of_passes()
    with reuse_freed_memory():
        faults_of_passes()  # the heap grows to the pass's peak once
        inside = faults_of_passes()
    after = faults_of_passes()
    print(json.dumps({"outside": outside, "inside": inside, "after": after}))
    """
)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
def test_freed_buffers_are_reused_inside_and_mapped_afresh_outside() -> None:
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                          check=True, timeout=300)
    faults = json.loads(done.stdout.strip().splitlines()[-1])
    # One pass maps ~400 MiB of feature maps (~100,000 pages); three passes with glibc's
    # defaults fault each of them in again, three with the heap kept fault next to none.
    assert faults["outside"] > 30_000, faults
    assert faults["inside"] * 5 < faults["outside"], faults
    assert faults["after"] * 2 > faults["outside"], faults  # the defaults are back
