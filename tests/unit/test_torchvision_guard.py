"""spandrel imports with torchvision missing, broken or working; each case in a fresh Python."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]

PROBE = textwrap.dedent(
    """
    import json, logging, sys
    records = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logging.getLogger("sfumato").addHandler(handler)

    import sfumato.core.models.upscaler_loader  # importing the loader changes nothing yet
    before = "torchvision" in sys.modules
    from sfumato.core.models.torchvision_guard import (
        prepare_spandrel_import, spandrel_disabled_architectures)
    first = prepare_spandrel_import()
    second = prepare_spandrel_import()
    result = {"before": before, "first": first, "second": second, "logged": records,
              "disabled": spandrel_disabled_architectures()}
    if IMPORT_SPANDREL:
        import importlib, importlib.util
        import spandrel
        result["spandrel_archs"] = len(spandrel.MAIN_REGISTRY)
        lama = importlib.import_module("spandrel.architectures.LaMa.__arch.LaMa")
        try:
            lama.rotate(None, 0.0, lama.InterpolationMode.BILINEAR)
            result["rotate"] = "ran"
        except Exception as exc:
            result["rotate"] = f"{type(exc).__name__}: {exc}"
        # RestoreFormer's normalize is arithmetic: the stand-in does it as torchvision does
        import torch
        restore = importlib.import_module("spandrel.architectures.RestoreFormer")
        x = torch.tensor([[[0.0]], [[0.5]], [[1.0]]])
        result["normalize"] = restore.tv_normalize(x, [0.5] * 3, [0.5] * 3).flatten().tolist()
        # spandrel's LaMa generator never builds the rotating wrapper (narrow here, for speed)
        net = lama.FFCResNetGenerator(4, 3, ngf=8, n_blocks=1)
        result["lama_rotates"] = any(
            isinstance(m, lama.LearnableSpatialTransformWrapper) for m in net.modules())
        # every other library must now see torchvision as not installed
        result["find_spec"] = importlib.util.find_spec("torchvision") is None
        from transformers.utils import is_torchvision_available
        result["transformers_sees"] = is_torchvision_available()
    print(json.dumps(result))
    """
)


def _probe(tmp_path: Path, fake_torchvision: dict[str, str] | None, spandrel: bool) -> dict:
    env = dict(os.environ)
    if fake_torchvision is not None:
        site = tmp_path / "site"
        for relative, body in fake_torchvision.items():
            target = site / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(body))
        env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    code = f"IMPORT_SPANDREL = {spandrel}\n{PROBE}"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


BROKEN = {
    "torchvision/__init__.py": """
        from torchvision import _meta  # a submodule that imports fine first
        raise RuntimeError("operator torchvision::nms does not exist")
    """,
    "torchvision/_meta.py": "",
}

WORKING = {
    "torchvision/__init__.py": "",
    "torchvision/transforms/__init__.py": "",
    "torchvision/transforms/functional.py": """
        import enum
        class InterpolationMode(enum.Enum):
            BILINEAR = "bilinear"
        def rotate(*args, **kwargs):
            return None
        def normalize(*args, **kwargs):
            return None
    """,
}


def _check_stand_in(result: dict) -> None:
    assert result["before"] is False
    assert "pip install the torchvision built for your torch" in result["first"]
    assert "LaMa and RestoreFormer still work" in result["first"]
    assert result["second"] and result["logged"] == [result["first"]]  # logged once
    assert result["disabled"] == []  # nothing is disabled: the stand-in covers both
    assert result["spandrel_archs"] > 20
    assert "SfumatoError" in result["rotate"] and "no stand-in" in result["rotate"]
    assert result["normalize"] == [-1.0, 0.0, 1.0]
    assert result["lama_rotates"] is False
    assert result["find_spec"] is True and result["transformers_sees"] is False


def test_broken_torchvision_is_replaced_visibly(tmp_path: Path) -> None:
    result = _probe(tmp_path, BROKEN, spandrel=True)
    _check_stand_in(result)
    assert "torchvision::nms" in result["first"]


def test_missing_torchvision_is_replaced_visibly(tmp_path: Path) -> None:
    # An empty, unimportable package shadows any real torchvision for this probe.
    missing = {"torchvision/__init__.py": "raise ImportError('No module named torchvision')"}
    _check_stand_in(_probe(tmp_path, missing, spandrel=True))


def test_working_torchvision_is_left_alone(tmp_path: Path) -> None:
    result = _probe(tmp_path, WORKING, spandrel=False)
    assert result["first"] is None and result["second"] is None
    assert result["logged"] == [] and result["disabled"] == []
