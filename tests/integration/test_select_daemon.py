"""bridge.select_object against a real daemon process whose worker answers with a known mask
(tests/inject_mask: the one double, at the model's boundary) and a fake host whose layer sits
at an offset in the image: the host's new selection is that mask exactly, at the place the
model saw, in one undo step; no layer is added; refusals leave the selection alone."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.raster import Layout, Raster
from sfumato.bridge.select_object import select_object
from sfumato.bridge.selection import Rect

from tests.support.daemon_process import DaemonProcess, start_daemon
from tests.support.fake_host import FakeHost
from tests.support.tiny_models import build_tiny_model
from tests.support.tiny_segmenters import build_tiny_sam2, build_tiny_sam3, known_mask

pytestmark = pytest.mark.integration

INJECT = Path(__file__).resolve().parents[1] / "inject_mask"
SIZE, OFFSET = (90, 70), (13, 21)  # the layer: width x height, at (13, 21) in the image


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    from sfumato.core.models.model_add import register_model
    from sfumato.core.models.registry import Registry

    tmp = tmp_path_factory.mktemp("select-daemon")
    registry = Registry(tmp / "home")
    register_model(registry, "tiny-sam2", build_tiny_sam2(tmp / "tiny-sam2"))
    register_model(registry, "tiny-sam3", build_tiny_sam3(tmp / "tiny-sam3"))
    register_model(registry, "tiny-sd", build_tiny_model("sd15-inpaint", tmp / "tiny-sd"))
    env = {"PYTHONPATH": os.pathsep.join([str(INJECT), os.environ.get("PYTHONPATH", "")])}
    process = start_daemon(tmp / "home", extra_env=env)
    yield process
    process.stop()


def _array(raster: Raster) -> np.ndarray:
    return np.frombuffer(raster.packed_bytes(), np.uint8).reshape(raster.height, raster.width)


def _select(daemon: DaemonProcess, host: FakeHost, mode: str, **extra: Any) -> Any:
    params, model = extra.pop("params", {}), extra.pop("model", "tiny-sam2")
    with daemon.client(timeout_s=120.0) as client:
        return select_object(host, client, params, model, mode, **extra)


def test_subject_replaces_the_selection_with_the_mask_exactly(daemon: DaemonProcess) -> None:
    host = FakeHost(SIZE, OFFSET, selection=Rect(5, 5, 10, 10))
    outcome = _select(daemon, host, "subject")
    assert outcome.ok, outcome.message
    assert host.selection_mask is not None
    mask, x, y = host.selection_mask
    assert (x, y) == OFFSET  # the whole layer, where it sits in the image
    assert np.array_equal(_array(mask), known_mask(SIZE[1], SIZE[0]) * np.uint8(255))
    assert host.layers == []  # no layer added or changed
    kinds = [entry[0] for entry in host.log]
    assert kinds.index("undo_start") < kinds.index("replace_selection") < \
        kinds.index("undo_end")  # one undo step


def test_object_in_the_rough_selection_is_placed_at_the_crop(daemon: DaemonProcess) -> None:
    host = FakeHost(SIZE, OFFSET, selection=Rect(30, 20, 20, 15))
    outcome = _select(daemon, host, "selection", params={"context": 7})
    assert outcome.ok, outcome.message
    mask, x, y = host.selection_mask  # type: ignore[misc]
    crop = Rect(23, 13, 34, 29)  # the selection's box and 7 px, in layer coordinates
    assert (x, y) == (OFFSET[0] + crop.x, OFFSET[1] + crop.y)
    assert np.array_equal(_array(mask), known_mask(crop.height, crop.width) * np.uint8(255))
    read = [entry for entry in host.log if entry[0] == "read_pixels"]
    assert all(entry[1] == crop for entry in read)  # only the crop was read


def test_as_a_channel_the_selection_stays(daemon: DaemonProcess) -> None:
    host = FakeHost(SIZE, OFFSET)
    outcome = _select(daemon, host, "points", include=[(40.0, 50.0)], exclude=[(14.0, 22.0)],
                      output="channel")
    assert outcome.ok, outcome.message
    assert host.selection_mask is None and len(host.channels) == 1
    mask, x, y, name = host.channels[0]
    assert (x, y) == OFFSET and "tiny-sam2" in name
    assert np.array_equal(_array(mask), known_mask(SIZE[1], SIZE[0]) * np.uint8(255))


def test_as_a_layer_the_object_is_cut_out_above_the_source(daemon: DaemonProcess) -> None:
    before = np.random.default_rng(2).integers(0, 256, (SIZE[1], SIZE[0], 4), np.uint8)
    image = Raster(SIZE[0], SIZE[1], Layout.RGBA8, before.tobytes())  # alpha varies too
    host = FakeHost(SIZE, OFFSET, selection=Rect(30, 20, 20, 15), image=image)
    outcome = _select(daemon, host, "selection", params={"context": 7}, output="layer")
    assert outcome.ok, outcome.message
    assert host.selection_mask is None and host.channels == []  # the selection stays
    (raster, x, y, name), = host.layers
    crop = Rect(23, 13, 34, 29)  # the rough selection's box and 7 px, in the layer
    assert (x, y) == (OFFSET[0] + crop.x, OFFSET[1] + crop.y) and outcome.layers == (name,)
    assert "Cutout" in name and (raster.width, raster.height) == (crop.width, crop.height)
    cut = np.frombuffer(raster.packed_bytes(), np.uint8).reshape(crop.height, crop.width, 4)
    under = before[crop.y:crop.bottom, crop.x:crop.right]
    assert np.array_equal(cut[..., :3], under[..., :3])  # the layer's own colours
    known = known_mask(crop.height, crop.width)
    assert np.array_equal(cut[..., 3], np.where(known, under[..., 3], 0))  # alpha x mask


@pytest.mark.parametrize("mode,extra,says", [
    ("words", {"params": {"text": "the cat"}}, "SAM 3"),
    ("points", {"include": [(500.0, 5.0)]}, "off the active layer"),
    ("points", {}, "at least one point"),
    ("selection", {}, "Nothing is selected"),
    ("words", {}, "Type the words"),
])
def test_refusals_leave_the_selection_alone(daemon: DaemonProcess, mode: str,
                                            extra: dict[str, Any], says: str) -> None:
    host = FakeHost(SIZE, OFFSET)
    outcome = _select(daemon, host, mode, **extra)
    assert not outcome.ok and says in outcome.message
    assert host.selection_mask is None and host.channels == [] and host.layers == []
    assert "undo_start" not in [entry[0] for entry in host.log]
    if mode == "words" and "params" in extra:
        assert outcome.code is ErrorCode.WRONG_MODEL_KIND


def _sfumato(daemon: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sfumato.core", *args], env=daemon.env(),
                          capture_output=True, text=True, timeout=300)


def test_inpaint_mask_from_words_repaints_only_what_they_select(daemon: DaemonProcess,
                                                                 tmp_path: Path) -> None:
    y, x = np.mgrid[0:48, 0:64]
    picture = np.stack([x * 3, y * 5, (x + y) * 2], axis=-1).astype(np.uint8)
    Image.fromarray(picture).save(tmp_path / "in.png")
    done = _sfumato(daemon, "inpaint", str(tmp_path / "in.png"), "--mask-from", "the cup",
                    "--model", "tiny-sd", "--prompt", "a red cup", "--steps", "2", "--seed",
                    "1", "--grow", "0", "--feather", "0", "--context", "8",
                    "-o", str(tmp_path / "out.png"))
    assert done.returncode == 0, done.stderr
    out = np.asarray(Image.open(tmp_path / "out.png").convert("RGB"))
    selected = known_mask(48, 64)  # what the SAM 3 (the double) answered for the words
    assert np.array_equal(out[~selected], picture[~selected])  # outside: bit-identical
    assert (out[selected] != picture[selected]).any()  # inside: repainted


@pytest.mark.parametrize("flags,says", [
    (["--mask-from", "the cup", "--mask", "m.png"], "not both"),
    ([], "--mask-from WORDS"),
])
def test_inpaint_mask_choices_are_refused_before_any_job(daemon: DaemonProcess, tmp_path: Path,
                                                         flags: list[str], says: str) -> None:
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "in.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "m.png")
    flags = [str(tmp_path / f) if f == "m.png" else f for f in flags]
    done = _sfumato(daemon, "inpaint", str(tmp_path / "in.png"), *flags, "--model", "tiny-sd",
                    "-o", str(tmp_path / "out.png"))
    assert done.returncode != 0 and says in done.stderr
    assert not (tmp_path / "out.png").exists()
