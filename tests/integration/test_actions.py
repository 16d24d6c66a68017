"""bridge/actions.py with a fake host against a real daemon on a loopback socket (upscale path,
tiny random-weight upscaler): placement, region upscale, no daemon, cancel."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from sfumato.bridge import actions
from sfumato.bridge.client import Client
from sfumato.bridge.raster import Layout, Raster
from sfumato.bridge.selection import Rect, crop

from tests.support.daemon_process import DaemonProcess, free_endpoint
from tests.support.fake_host import FakeHost
from tests.support.tiny_upscaler import build_tiny_upscaler

pytestmark = pytest.mark.integration


def _image(width: int, height: int) -> Raster:
    data = bytes((x * 5 + y * 3 + c * 40) % 256 if c < 3 else 255
                 for y in range(height) for x in range(width) for c in range(4))
    return Raster(width, height, Layout.RGBA8, data)


@pytest.fixture
def tiny_daemon(daemon: DaemonProcess, tmp_path: Path) -> DaemonProcess:
    weights = build_tiny_upscaler(tmp_path / "tiny-x2.safetensors")
    subprocess.run([sys.executable, "-m", "sfumato.core", "models", "add", "tiny", str(weights)],
                   env=daemon.env(), check=True, capture_output=True)
    return daemon


def test_upscale_layer_and_selection_through_the_daemon(tiny_daemon: DaemonProcess) -> None:
    image = _image(60, 40)
    whole = FakeHost((60, 40), offset=(7, 5), image=image)
    with tiny_daemon.client(timeout_s=30) as client:
        outcome = actions.upscale_layer(whole, client, {}, "tiny", selection_only=False)
        assert outcome.ok, outcome.message
        ((layer, x, y, name),) = whole.layers
        assert (layer.width, layer.height, layer.layout) == (120, 80, Layout.RGBA8)
        assert (x, y) == (14, 10) and name == "sfumato upscale x2 tiny"
        assert ("scale_image", 2.0) in whole.log

        part = FakeHost((60, 40), offset=(7, 5), selection=Rect(20, 10, 16, 12), image=image)
        outcome = actions.upscale_layer(part, client, {}, "tiny", selection_only=True)
        assert outcome.ok, outcome.message
    ((region, x, y, _),) = part.layers
    assert (region.width, region.height, x, y) == (32, 24, 27, 15)
    assert not any(entry[0] == "scale_image" for entry in part.log)
    # Seen with enough context, the region is the matching part of the whole-layer result.
    expected = crop(layer, Rect(40, 20, 32, 24)).packed_bytes()
    got = region.packed_bytes()
    assert max(abs(a - b) for a, b in zip(got, expected, strict=True)) <= 1


def test_no_daemon_is_a_message_within_seconds(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SFUMATO_HOME", str(tmp_path / "home"))  # no daemon ever ran there
    host = FakeHost((16, 16), selection=Rect(2, 2, 4, 4))
    started = time.monotonic()
    with Client(free_endpoint(), timeout_s=30) as client:
        outcome = actions.inpaint_selection(host, client, {"prompt": "x"}, "tiny")
    assert time.monotonic() - started < 5
    assert not outcome.ok and "no sfumato daemon answers" in outcome.message
    assert host.messages == [outcome.message] and host.layers == []


def test_cancel_from_the_host_changes_nothing(tiny_daemon: DaemonProcess) -> None:
    host = FakeHost((512, 384), image=_image(512, 384))
    host.cancel = True  # the artist pressed Cancel as soon as the job started
    with tiny_daemon.client(timeout_s=30) as client:
        outcome = actions.upscale_layer(host, client, {"tile": 32}, "tiny",
                                        selection_only=False)
    assert not outcome.ok and "cancelled" in outcome.message
    assert host.layers == [] and not any(entry[0] == "undo_start" for entry in host.log)
