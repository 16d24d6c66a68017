"""`sfumato edit` as a batch user runs it, through a real daemon with tiny real models: the
picture keeps its size, nothing outside the mask changes, the result keeps its recipe, an empty
instruction and a model that cannot edit are refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sfumato.core.cli.inspect_cmd import read_recipe

from tests.support.daemon_process import DaemonProcess
from tests.support.tiny_models import build_tiny_model

pytestmark = pytest.mark.integration

FAST = ["--steps", "2", "--resolution", "128"]


def sfumato(daemon: DaemonProcess, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sfumato.core", *args], env=daemon.env(),
                          capture_output=True, text=True, timeout=300)


def test_edit_writes_the_picture_changed_only_inside_the_mask(daemon: DaemonProcess,
                                                              tmp_path: Path) -> None:
    source = np.random.default_rng(0).integers(0, 256, (57, 83, 3), dtype=np.uint8)
    Image.fromarray(source).save(tmp_path / "in.png")
    none = sfumato(daemon, "edit", str(tmp_path / "in.png"), "--instruction", "x", "-o",
                   str(tmp_path / "none.png"))  # no edit model registered yet: what works
    assert none.returncode == 1 and "InstructPix2Pix" in none.stderr
    assert "FLUX.1 Kontext" in none.stderr and "models scan" in none.stderr
    daemon.add_model("tiny-ip2p", build_tiny_model("instruct-pix2pix", tmp_path / "ip2p"))
    daemon.add_model("tiny-sd15", build_tiny_model("sd15", tmp_path / "sd15"))
    mask = np.zeros((57, 83), np.uint8)
    mask[11:40, 21:60] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "night.png"
    made = sfumato(daemon, "edit", str(tmp_path / "in.png"), "--mask", str(tmp_path / "mask.png"),
                   "--instruction", "make it night", "--seed", "4", "--feather", "0",
                   "--model", "tiny-ip2p", "-o", str(out), *FAST)
    assert made.returncode == 0, made.stderr
    report = json.loads(made.stdout.strip().splitlines()[-1])
    assert report["seeds"] == [4] and report["model"] == "tiny-ip2p"
    picture = np.asarray(Image.open(out))
    assert picture.shape == source.shape  # an RGB input stays RGB, the same size
    outside = mask == 0
    assert np.array_equal(picture[outside], source[outside])
    assert not np.array_equal(picture[~outside], source[~outside])
    recipe = read_recipe(out)  # what `sfumato inspect` prints
    assert (recipe.task, recipe.model, recipe.seed) == ("edit", "tiny-ip2p", 4)
    assert recipe.params["instruction"] == "make it night"

    empty = sfumato(daemon, "edit", str(tmp_path / "in.png"), "-o", str(tmp_path / "e.png"))
    assert empty.returncode == 1 and "--instruction" in empty.stderr
    wrong = sfumato(daemon, "edit", str(tmp_path / "in.png"), "--instruction", "x",
                    "--model", "tiny-sd15", "-o", str(tmp_path / "no.png"), *FAST)
    assert wrong.returncode == 1
    assert "flux-kontext or flux2-klein or instruct-pix2pix" in wrong.stderr
    assert not (tmp_path / "no.png").exists()
