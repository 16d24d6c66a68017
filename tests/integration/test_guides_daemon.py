"""Controls, image prompts and preprocessing end to end: the `sfumato` command line and the
shared plug-in actions (a fake host with other layers) against a real daemon on a loopback
socket, with tiny SD 1.5 models registered through `sfumato models add`."""

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
from sfumato.bridge.guides import Control, ImagePrompt
from sfumato.bridge.raster import Layout, Raster
from sfumato.bridge.selection import Rect

from tests.support.daemon_process import DaemonProcess
from tests.support.fake_host import FakeHost
from tests.support.tiny_models import (
    build_tiny_controlnet,
    build_tiny_image_encoder,
    build_tiny_ip_adapter,
    build_tiny_model,
)

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "data"
FAST = ["--steps", "2", "--seed", "3", "--grow", "2", "--feather", "4"]


def sfumato(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sfumato.core", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def guided_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    from tests.support.daemon_process import start_daemon

    tmp = tmp_path_factory.mktemp("guided-daemon")
    daemon = start_daemon(tmp / "home")
    try:
        models = tmp / "models"
        build_tiny_image_encoder(models / "ip" / "image_encoder")
        made = {
            "tiny": (build_tiny_model("sd15-inpaint", models / "tiny"), "sd15-inpaint"),
            "canny-sd15": (build_tiny_controlnet("sd15", models / "canny"), "controlnet"),
            "scribble-sd15": (build_tiny_controlnet("sd15", models / "scribble", seed=5),
                              "controlnet"),
            "ip-sd15": (build_tiny_ip_adapter("sd15", models / "ip" / "ip_sd15.safetensors"),
                        "ip-adapter"),
        }
        for name, (path, kind) in made.items():
            added = sfumato(daemon.env(), "models", "add", name, path)
            assert added.returncode == 0, added.stderr
            assert f"added {name}: {kind}" in added.stdout
        yield daemon
    finally:
        daemon.stop()


def _photo(tmp: Path) -> tuple[Path, Path, np.ndarray]:
    photo = np.asarray(Image.open(DATA / "photo.png").convert("RGB"))[:160, :200]
    Image.fromarray(photo).save(tmp / "photo.png")
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[50:110, 60:150] = 255
    Image.fromarray(mask).save(tmp / "mask.png")
    return tmp / "photo.png", tmp / "mask.png", photo


def test_the_command_line_follows_controls_and_image_prompts(guided_daemon: DaemonProcess,
                                                             tmp_path: Path) -> None:
    env = guided_daemon.env()
    image, mask, photo = _photo(tmp_path)
    drawing = np.zeros((40, 50, 3), np.uint8)  # another size than the photo: stretched
    drawing[10:30, 20:22] = 255
    Image.fromarray(drawing).save(tmp_path / "drawing.png")
    Image.fromarray(photo[::-1]).save(tmp_path / "reference.png")

    plain = sfumato(env, "inpaint", image, "--mask", mask, "--prompt", "a kite", "--model",
                    "tiny", *FAST, "-o", tmp_path / "plain.png")
    guided = sfumato(env, "inpaint", image, "--mask", mask, "--prompt", "a kite", "--model",
                     "tiny", *FAST, "--control", "canny:auto",
                     "--control", f"scribble@scribble-sd15:{tmp_path / 'drawing.png'}:0.8",
                     "--image-prompt", f"{tmp_path / 'reference.png'}:0.7",
                     "-o", tmp_path / "guided.png")
    assert plain.returncode == 0, plain.stderr
    assert guided.returncode == 0, guided.stderr
    assert json.loads(guided.stdout.strip().splitlines()[-1])["warnings"] == []
    before = np.asarray(Image.open(tmp_path / "plain.png").convert("RGB"))
    after = np.asarray(Image.open(tmp_path / "guided.png").convert("RGB"))
    assert not np.array_equal(before[50:110, 60:150], after[50:110, 60:150])
    far = np.ones(photo.shape[:2], bool)
    far[50 - 8:110 + 8, 60 - 8:150 + 8] = False
    assert np.array_equal(after[far], photo[far])  # outside the mask: the input's pixels

    edges = sfumato(env, "preprocess", "canny", image, "-o", tmp_path / "edges.png")
    assert edges.returncode == 0, edges.stderr
    made = np.asarray(Image.open(tmp_path / "edges.png"))
    assert made.shape == photo.shape and set(np.unique(made)) <= {0, 255} and made.any()

    unknown = sfumato(env, "inpaint", image, "--mask", mask, "--prompt", "x", "--model", "tiny",
                      "--control", "normal:auto", "-o", tmp_path / "x.png")
    assert unknown.returncode == 1 and "canny" in unknown.stderr and "normal" in unknown.stderr
    bad = sfumato(env, "refine", image, "--prompt", "x", "--strength", "0.5", "--model", "tiny",
                  "--control", "canny", "-o", tmp_path / "x.png")
    assert bad.returncode == 1 and "KIND:IMAGE" in bad.stderr
    assert not (tmp_path / "x.png").exists()


def _rgba(array: np.ndarray) -> Raster:
    height, width = array.shape[:2]
    return Raster(width, height, Layout.RGBA8, np.ascontiguousarray(array).tobytes())


def test_actions_take_controls_and_image_prompts_from_other_layers(
    guided_daemon: DaemonProcess, tmp_path: Path,
) -> None:
    _, _, photo = _photo(tmp_path)
    source = np.concatenate([photo, np.full(photo.shape[:2] + (1,), 255, np.uint8)], axis=2)
    lines = np.zeros((120, 120, 4), np.uint8)
    lines[40:80, 50:54] = 255
    others = {"lines": (_rgba(lines), 30, 20), "ref": (_rgba(source[::-1]), 0, 0)}

    def host() -> FakeHost:
        return FakeHost((200, 160), offset=(10, 5), selection=Rect(60, 50, 90, 60),
                        image=_rgba(source), others=others)

    params = {"prompt": "a kite", "steps": 2, "seed": 3, "grow": 2, "feather": 4}
    with guided_daemon.client(timeout_s=60) as client:
        plain = host()
        assert actions.inpaint_selection(plain, client, params, "tiny").ok
        guided = host()
        outcome = actions.inpaint_selection(
            guided, client, params, "tiny",
            controls=[Control("canny"), Control("scribble", layer="lines", scale=0.9)],
            image_prompts=[ImagePrompt("ref", weight=0.7)])
        assert outcome.ok, outcome.message
        # the control layer was read over the very rectangle the source layer was
        (read,) = [entry for entry in guided.log if entry[0] == "read_pixels"]
        assert ("read_layer", "lines", read[1]) in guided.log
        assert ("read_layer", "ref", None) in guided.log
        (layer, x, y, _), (plain_layer, px, py, _) = guided.layers[0], plain.layers[0]
        assert (x, y) == (px, py) and (layer.width, layer.height) == (plain_layer.width,
                                                                      plain_layer.height)
        assert layer.packed_bytes() != plain_layer.packed_bytes()

        # no selection: the control image is the second raster, where a mask would go
        whole = FakeHost((200, 160), offset=(10, 5), image=_rgba(source), others=others)
        outcome = actions.refine(whole, client, {**params, "strength": 0.6}, "tiny",
                                 controls=[Control("scribble", layer="lines")])
        assert outcome.ok, outcome.message
        ((layer, x, y, _),) = whole.layers
        assert (layer.width, layer.height, x, y) == (200, 160, 10, 5)

        missing = host()
        outcome = actions.refine(missing, client, {**params, "strength": 0.5}, "tiny",
                                 controls=[Control("canny", layer="nope")])
        assert not outcome.ok and "no layer 'nope'" in outcome.message
        assert missing.layers == []
        old_host = host()
        old_host.read_layer = None  # an adapter written before other layers could be read
        outcome = actions.inpaint_selection(old_host, client, params, "tiny",
                                            image_prompts=[ImagePrompt("ref")])
        assert not outcome.ok and "cannot read other layers" in outcome.message

        edges = host()
        outcome = actions.preprocess_layer(edges, client, "canny")
        assert outcome.ok and outcome.layers == ("Control: canny",)
        ((made, x, y, name),) = edges.layers
        assert (made.width, made.height, x, y) == (200, 160, 10, 5)
        assert ("undo_start", "sfumato Control: canny") in edges.log


@pytest.mark.parametrize(("guides", "code", "named"), [
    ({"controls": [{"kind": "canny", "image": "auto", "model": "cany-sd15"}]},
     "unknown_model", "cany-sd15"),
    ({"controls": [{"kind": "canny", "image": "auto", "model": "ip-sd15"}]},
     "wrong_model_kind", "ip-sd15"),
    ({"image_prompts": [{"image": 2, "model": "canny-sd15"}]},
     "wrong_model_kind", "canny-sd15"),
    ({"controls": [{"kind": "sketchy", "image": "auto"}]}, "bad_params", "sketchy"),
])
def test_a_wrong_guide_is_refused_at_submit_before_anything_queues(
        guided_daemon: DaemonProcess, guides: dict, code: str, named: str) -> None:
    """A typo in a control's model id or kind comes back at once as the submit's answer,
    naming the culprit, instead of as a failed job after the queue and a model load."""
    from sfumato.bridge.client import RequestRejected

    photo = np.asarray(Image.open(DATA / "photo.png").convert("RGBA"))[:64, :64].copy()
    mask = np.full((64, 64), 255, np.uint8)
    rasters = [Raster(64, 64, Layout.RGBA8, photo.tobytes()),
               Raster(64, 64, Layout.GRAY8, mask.tobytes()),
               Raster(64, 64, Layout.RGBA8, photo.tobytes())]
    with guided_daemon.client() as client:
        with pytest.raises(RequestRejected) as refused:
            client.submit("inpaint", {"prompt": "a kite", "steps": 2, **guides}, rasters,
                          model="tiny")
        assert refused.value.code == code
        assert named in refused.value.message
        status = client.status()
        assert status.running is None and status.queued == []  # nothing was queued
