"""`sfumato inpaint` and `sfumato refine` keep each output's recipe, as generate, expand and
edit do: `sfumato inspect` reads the task, model, seed and settings back from the PNG."""

from __future__ import annotations

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


def sfumato(daemon: DaemonProcess, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sfumato.core", *args], env=daemon.env(),
                          capture_output=True, text=True, timeout=300)


def test_inpaint_and_refine_outputs_keep_their_recipes(daemon: DaemonProcess,
                                                      tmp_path: Path) -> None:
    daemon.add_model("tiny", build_tiny_model("sd15-inpaint", tmp_path / "sd15-inpaint"))
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (48, 64, 3), np.uint8)).save(
        tmp_path / "in.png")
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 20:40] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    fast = ["--steps", "2", "--resolution", "128", "--model", "tiny"]
    painted = sfumato(daemon, "inpaint", str(tmp_path / "in.png"), "--mask",
                      str(tmp_path / "m.png"), "--prompt", "a kite", "--seed", "5",
                      "--variants", "2", "-o", str(tmp_path / "kite.png"), "--layer-out",
                      str(tmp_path / "layer.png"), *fast)
    assert painted.returncode == 0, painted.stderr
    for path, seed in ((tmp_path / "kite.png", 5), (tmp_path / "kite-2.png", 6),
                       (tmp_path / "layer-2.png", 6)):
        recipe = read_recipe(path)
        assert (recipe.task, recipe.model, recipe.seed) == ("inpaint", "tiny", seed)
        assert recipe.params["prompt"] == "a kite" and recipe.params["variants"] == 1
    refined = sfumato(daemon, "refine", str(tmp_path / "in.png"), "--strength", "0.5",
                      "--prompt", "dusk", "--seed", "9", "-o", str(tmp_path / "dusk.png"),
                      *fast)
    assert refined.returncode == 0, refined.stderr
    recipe = read_recipe(tmp_path / "dusk.png")
    assert (recipe.task, recipe.seed, recipe.params["strength"]) == ("refine", 9, 0.5)
    shown = sfumato(daemon, "inspect", str(tmp_path / "dusk.png"))
    assert shown.returncode == 0 and "refine with tiny" in shown.stdout
