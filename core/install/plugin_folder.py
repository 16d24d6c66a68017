"""Where a plug-in's files are, and the staged copy that vendors the bridge beside them."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from sfumato.bridge.protocol import ErrorCode
from sfumato.core.errors import SfumatoError


def plugins_folder(host: str, marker: str) -> Path:
    """`plugins/<host>`: package data of an installed wheel (`sfumato.plugins`), else the
    checkout beside core/ (editable installs); the one holding `marker`."""
    try:
        spec = importlib.util.find_spec("sfumato.plugins")
    except ImportError:
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec else []
    candidates = [Path(p) / host for p in locations]
    candidates.append(Path(__file__).resolve().parents[2] / "plugins" / host)
    for folder in candidates:
        if (folder / marker).is_file():
            return folder
    raise SfumatoError(ErrorCode.NOT_FOUND,
                       f"the {host} plug-in's files are not in this sfumato install; reinstall it")


def bridge_source() -> Path:
    spec = importlib.util.find_spec("sfumato.bridge")
    if spec is None or spec.origin is None:
        raise SfumatoError(ErrorCode.NOT_FOUND, "sfumato.bridge is not importable; reinstall")
    return Path(spec.origin).parent


def copy_plugin_folder(source: Path, bridge: Path, target: Path) -> None:
    """`source`'s .py files into `target`, with the bridge vendored beside them. Built beside
    the target, then swapped in, so a failed copy never leaves half a plug-in."""
    staging = target.with_name(target.name + ".installing")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for path in sorted(source.glob("*.py")):
        shutil.copy2(path, staging / path.name)
    # no sfumato/__init__.py: `sfumato` stays a namespace package, as in the wheel
    vendored = staging / "sfumato" / "bridge"
    vendored.mkdir(parents=True)
    for path in sorted(bridge.glob("*.py")):
        shutil.copy2(path, vendored / path.name)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
