"""Remove through a real daemon on a loopback socket: `sfumato remove` as a batch user runs it
(a tiny LaMa, then a tiny SD 1.5 inpaint model refining the fill in the same worker, which has
spandrel and diffusers side by side), and bridge.actions.remove_object with a fake host on an
offset layer: the new layer lands over the selection, the source is untouched."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sfumato.bridge import actions
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.raster import Layout, Raster
from sfumato.bridge.selection import Rect
from sfumato.core.pixels.masks import soft_mask

from tests.support.daemon_process import DaemonProcess, start_daemon
from tests.support.fake_host import FakeHost
from tests.support.tiny_fill import build_tiny_lama
from tests.support.tiny_models import build_tiny_model

pytestmark = pytest.mark.integration

EDGES = ["--grow", "2", "--feather", "4", "--context", "16"]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """One daemon for this module, its store holding a tiny LaMa and a tiny SD 1.5 inpaint
    model (registered as `models add` does; that command is tested on its own)."""
    from sfumato.core.models.model_add import register_model
    from sfumato.core.models.registry import Registry

    tmp = tmp_path_factory.mktemp("remove-daemon")
    registry = Registry(tmp / "home")
    register_model(registry, "tiny-lama", build_tiny_lama(tmp / "tiny-lama.safetensors"))
    register_model(registry, "tiny-sd", build_tiny_model("sd15-inpaint", tmp / "tiny-sd"))
    process = start_daemon(tmp / "home")
    yield process
    process.stop()


def _sfumato(daemon: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sfumato.core", *args], env=daemon.env(),
                          capture_output=True, text=True, timeout=300)


def test_remove_from_the_shell_with_lama_then_a_diffusion_model(daemon: DaemonProcess,
                                                                tmp_path: Path) -> None:
    y, x = np.mgrid[0:96, 0:128]
    image = np.stack([x * 2, y * 2, (x + y) % 256], axis=-1).astype(np.uint8)
    image[40:60, 50:80] = (255, 0, 0)
    mask = np.zeros((96, 128), np.uint8)
    mask[38:62, 48:82] = 255
    Image.fromarray(image).save(tmp_path / "in.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    outside = soft_mask(mask, 2, 4) == 0
    for model, extra in (("tiny-lama", []), ("tiny-sd", ["--refine-strength", "0.5",
                                                        "--steps", "2", "--resolution", "64",
                                                        "--seed", "5"])):
        out = tmp_path / f"out-{model}.png"
        done = _sfumato(daemon, "remove", str(tmp_path / "in.png"), "--mask",
                        str(tmp_path / "mask.png"), "--model", model, "-o", str(out),
                        "--layer-out", str(tmp_path / f"layer-{model}.png"), *EDGES, *extra)
        assert done.returncode == 0, done.stderr
        result = np.asarray(Image.open(out))
        assert result.shape == image.shape  # an RGB file comes back RGB, its size
        assert np.array_equal(result[outside], image[outside])
        assert (result[40:60, 50:80] != image[40:60, 50:80]).any()
        info = json.loads(done.stdout.strip().splitlines()[-1])
        layer = Image.open(tmp_path / f"layer-{model}.png")
        x0, y0 = info["offset"]
        assert x0 <= 48 - 22 and y0 <= 38 - 22 and layer.size[0] < 128  # the crop, not all
        assert info["seeds"] == ([5] if model == "tiny-sd" else [])
    empty = tmp_path / "empty.png"
    Image.fromarray(np.zeros((96, 128), np.uint8)).save(empty)
    refused = _sfumato(daemon, "remove", str(tmp_path / "in.png"), "--mask", str(empty),
                       "--model", "tiny-lama", "-o", str(tmp_path / "never.png"))
    assert refused.returncode == 1 and "select the object to remove" in refused.stderr
    assert not (tmp_path / "never.png").exists()


def test_remove_object_puts_a_layer_over_the_selection(daemon: DaemonProcess,
                                                       tmp_path: Path) -> None:
    data = bytes((x * 3 + y * 5 + c * 50) % 256 if c < 3 else 255
                 for y in range(90) for x in range(120) for c in range(4))
    image = Raster(120, 90, Layout.RGBA8, data)
    selection = Rect(50, 30, 20, 16)
    host = FakeHost((120, 90), offset=(11, 7), selection=selection, image=image)
    params = {"grow": 2, "feather": 4, "context": 8}
    with daemon.client(timeout_s=60) as client:
        outcome = actions.remove_object(host, client, params, None)  # the daemon's LaMa
        assert outcome.ok, outcome.message
        ((layer, x, y, name),) = host.layers
        assert name == "Remove (tiny-lama)"
        reach = 2 + 4 + 8  # grow + feather + context: the crop the bridge sent
        assert 11 + 50 - reach <= x <= 11 + 50 and 7 + 30 - reach <= y <= 7 + 30
        assert x + layer.width >= 11 + 70 and y + layer.height >= 7 + 46
        assert layer.width < 120 and host.image.packed_bytes() == data  # source untouched
        nothing = FakeHost((120, 90), offset=(11, 7), selection=None, image=image)
        refused = actions.remove_object(nothing, client, params, "tiny-lama")
    assert not refused.ok and refused.code is ErrorCode.EMPTY_SELECTION
    assert "Nothing is selected" in refused.message and not nothing.layers
