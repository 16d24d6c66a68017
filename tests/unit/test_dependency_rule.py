"""plugins -> bridge <- core: the bridge and the plug-ins' host-free code load with no numpy,
torch or PIL, as they must inside GIMP's and Krita's embedded Python."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("numpy", "torch", "PIL", "diffusers", "transformers", "cv2", "spandrel")


# The plug-ins' modules that need neither Qt, Krita nor GIMP (the rest are tested in the hosts).
KRITA_HOST_FREE = ("daemon_status", "pixel_formats", "task_fields")
GIMP_HOST_FREE = ("gimp_procedures",)

# In a fresh interpreter with zmq made unimportable, as in an editor's Python without pyzmq:
# import everything the plug-ins load before their first request, then report what loaded.
_BLOCKED_ZMQ_PROBE = """
import importlib, json, sys
sys.modules["zmq"] = None  # `import zmq` now raises ImportError
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[5])
bridge, krita = json.loads(sys.argv[2]), json.loads(sys.argv[3])
for name in bridge:
    importlib.import_module("sfumato.bridge." + name)
for name in krita:
    importlib.import_module("sfumato_krita." + name)
for name in json.loads(sys.argv[6]):
    importlib.import_module(name)
from sfumato.bridge.client import Client, ClientError
try:
    Client("tcp://127.0.0.1:9")
    refusal = None
except ClientError as exc:
    refusal = [exc.code, exc.message]
heavy = json.loads(sys.argv[4])
loaded = [m for m, module in sys.modules.items() if module is not None]  # None: the block
print(json.dumps({"modules": sorted(m for m in loaded if m.startswith(("sfumato", "zmq", "gimp_"))
                                    or m.split(".")[0] in heavy),
                  "refusal": refusal}))
"""


def test_bridge_and_plugin_logic_load_without_pyzmq_or_heavy_packages() -> None:
    bridge = sorted(p.stem for p in (ROOT / "bridge").glob("*.py")
                    if p.stem not in ("__init__", "transport"))
    assert {"actions", "client", "codec", "endpoints", "selection"} <= set(bridge)
    out = subprocess.run(
        [sys.executable, "-c", _BLOCKED_ZMQ_PROBE, str(ROOT / "plugins" / "krita"),
         json.dumps(bridge), json.dumps(KRITA_HOST_FREE), json.dumps(HEAVY),
         str(ROOT / "plugins" / "gimp" / "sfumato_gimp"), json.dumps(GIMP_HOST_FREE)],
        capture_output=True, text=True, check=True, cwd=ROOT)
    found = json.loads(out.stdout)
    loaded = set(found["modules"])
    # every module asked for really loaded, and nothing heavy, no zmq and no core came with it
    assert {f"sfumato.bridge.{name}" for name in bridge} <= loaded
    assert {f"sfumato_krita.{name}" for name in KRITA_HOST_FREE} <= loaded
    assert set(GIMP_HOST_FREE) <= loaded
    assert "sfumato.bridge.transport" not in loaded
    assert not [m for m in loaded if m.split(".")[0] in HEAVY or m.startswith("zmq")]
    assert not [m for m in loaded if m.startswith("sfumato.core")]
    # and the first request says what is missing, with a code the plug-ins can act on
    code, message = found["refusal"]
    assert code == "missing_dependency" and "pyzmq" in message


def test_only_the_transport_imports_zmq_and_bridge_never_imports_core() -> None:
    offenders = []
    for path in (ROOT / "bridge").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level \
                else []
            for name in names:
                if name.split(".")[0] == "zmq" and path.name != "transport.py":
                    offenders.append(f"{path.name}:{node.lineno} imports {name}")
                if name.startswith("sfumato.core"):
                    offenders.append(f"{path.name}:{node.lineno} imports {name}")
    assert offenders == []


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
