"""plugins -> bridge <- core: the bridge and the plug-ins' host-free code load with no numpy,
torch or PIL, as they must inside GIMP's and Krita's embedded Python."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("numpy", "torch", "PIL", "diffusers", "transformers", "cv2", "spandrel")


def test_bridge_and_plugin_logic_import_no_heavy_package() -> None:
    modules = sorted(p.stem for p in (ROOT / "bridge").glob("*.py") if p.stem != "__init__")
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module('sfumato.bridge.' + name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert json.loads(out.stdout) == []
    assert "actions" in modules or len(modules) >= 5  # the whole bridge was imported


def test_no_heavy_import_statement_in_bridge_or_plugins() -> None:
    offenders = []
    for folder in ("bridge", "plugins"):
        for path in (ROOT / folder).rglob("*.py"):
            for line in path.read_text().splitlines():
                words = line.strip().split()
                if len(words) >= 2 and words[0] in ("import", "from") and \
                        words[1].split(".")[0] in HEAVY:
                    offenders.append(f"{path.relative_to(ROOT)}: {line.strip()}")
    assert offenders == []
