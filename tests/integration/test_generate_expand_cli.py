"""`sfumato generate` and `sfumato expand` as a batch user runs them, through a real daemon
with tiny real models: file sizes, variants and their recipes, the picture kept exactly
inside the expanded canvas, and a wrong model refused by kind."""

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

FAST = ["--steps", "2", "--resolution", "256"]


def sfumato(daemon: DaemonProcess, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sfumato.core", *args], env=daemon.env(),
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def models(daemon: DaemonProcess, tmp_path: Path) -> DaemonProcess:
    daemon.add_model("tiny-sd15", build_tiny_model("sd15", tmp_path / "sd15"))
    daemon.add_model("tiny-inpaint", build_tiny_model("sdxl-inpaint", tmp_path / "inpaint"))
    return daemon


def test_generate_and_expand_write_the_sizes_asked(models: DaemonProcess,
                                                   tmp_path: Path) -> None:
    out = tmp_path / "new.png"
    made = sfumato(models, "generate", "--prompt", "a lighthouse", "--size", "96x64",
                   "--variants", "2", "--seed", "3", "--model", "tiny-sd15", "-o", str(out),
                   *FAST)
    assert made.returncode == 0, made.stderr
    report = json.loads(made.stdout.strip().splitlines()[-1])
    assert report["seeds"] == [3, 4] and report["model"] == "tiny-sd15"
    first = np.asarray(Image.open(out))
    second = np.asarray(Image.open(tmp_path / "new-2.png"))
    assert first.shape[:2] == second.shape[:2] == (64, 96)
    assert not np.array_equal(first, second)  # two seeds, two pictures
    recipe = read_recipe(tmp_path / "new-2.png")  # what `sfumato inspect` prints
    assert (recipe.task, recipe.model, recipe.seed) == ("generate", "tiny-sd15", 4)
    assert recipe.params["prompt"] == "a lighthouse" and recipe.params["variants"] == 1
    assert recipe.daemon_version

    source = np.asarray(Image.open(out).convert("RGB"))
    Image.fromarray(source).save(tmp_path / "in.png")
    wide = tmp_path / "wide.png"
    grown = sfumato(models, "expand", str(tmp_path / "in.png"), "--right", "40", "--top", "8",
                    "--feather", "8", "--prompt", "more sea", "--model", "tiny-inpaint",
                    "-o", str(wide), *FAST)
    assert grown.returncode == 0, grown.stderr
    picture = np.asarray(Image.open(wide))
    assert picture.shape == (64 + 8, 96 + 40, 3)  # an RGB input stays RGB
    # the picture is kept exactly beyond the seams' feather (the top and right edges)
    assert np.array_equal(picture[8 + 8:, :96 - 8], source[8:, :96 - 8])
    assert json.loads(grown.stdout.strip().splitlines()[-1])["size"] == [136, 72]

    wrong = sfumato(models, "generate", "--prompt", "x", "--model", "tiny-inpaint",
                    "-o", str(tmp_path / "no.png"), *FAST)
    assert wrong.returncode == 1
    assert "flux or sd15 or sdxl" in wrong.stderr and not (tmp_path / "no.png").exists()
