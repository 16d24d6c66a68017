"""Install the Krita plug-in into a Krita resource folder, enable it in kritarc on request, and
check that Krita's Python can import pyzmq.

Layout written under the resource folder (Settings > Manage Resources > Open Resource Folder):
  pykrita/sfumato_krita/            the plug-in, with the bridge vendored as sfumato/bridge/
  pykrita/sfumato_krita.desktop     what pykrita lists in the Python Plugin Manager
  actions/sfumato_krita.action      the actions' texts and default shortcuts
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from sfumato.core.install.host_python import pyzmq_version
from sfumato.core.install.plugin_folder import bridge_source, copy_plugin_folder, plugins_folder

PLUGIN_NAME = "sfumato_krita"
FLATPAK_ID = "org.kde.krita"


def install_krita(dest: str | None, enable: bool, kritarc: str | None = None) -> str:
    """Install into `dest` (default: Krita's user resource folder); with `enable`, switch the
    plug-in on in kritarc. Returns a short report for the terminal."""
    resources = Path(dest).expanduser() if dest else krita_resource_dir()
    source = plugins_folder("krita", f"{PLUGIN_NAME}/__init__.py")
    _copy(source, bridge_source(), resources)
    lines = [f"installed the Krita plug-in in {resources / 'pykrita' / PLUGIN_NAME}"]
    if enable:
        rc = Path(kritarc).expanduser() if kritarc else kritarc_path()
        enable_in_kritarc(rc, PLUGIN_NAME)
        lines.append(f"enabled it in {rc} (edit kritarc only while Krita is closed: Krita "
                     "rewrites it when it quits)")
    else:
        lines.append("enable it in Krita: Settings > Configure Krita > Python Plugin Manager > "
                     "sfumato (or run this again with --enable while Krita is closed)")
    lines.append("restart Krita; the docker is under Settings > Dockers > sfumato, the actions "
                 "under Tools > Scripts")
    lines.extend(pyzmq_report(resources))
    return "\n".join(lines)


def krita_resource_dir() -> Path:
    home = Path.home()
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or home / "AppData" / "Roaming") / "krita"
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "krita"
    native = Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share") / "krita"
    flatpak = home / ".var" / "app" / FLATPAK_ID / "data" / "krita"
    return flatpak if flatpak.is_dir() and not native.is_dir() else native


def kritarc_path() -> Path:
    home = Path.home()
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local") / "kritarc"
    if sys.platform == "darwin":
        return home / "Library" / "Preferences" / "kritarc"
    native = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "kritarc"
    flatpak = home / ".var" / "app" / FLATPAK_ID / "config" / "kritarc"
    return flatpak if flatpak.exists() and not native.exists() else native


def enable_in_kritarc(path: Path, name: str) -> None:
    """Set `enable_<name>=true` in the [python] group, keeping every other line as it was."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    key = f"enable_{name}"
    out: list[str] = []
    group = None
    placed = False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            if group == "[python]" and not placed:
                out.append(f"{key}=true")
                placed = True
            group = stripped
        elif group == "[python]" and stripped.split("=", 1)[0].strip() == key:
            if not placed:
                out.append(f"{key}=true")
                placed = True
            continue
        out.append(line)
    if not placed:
        if group != "[python]":
            if out and out[-1].strip():
                out.append("")
            out.append("[python]")
        out.append(f"{key}=true")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(path.name + ".sfumato-tmp")
    staging.write_text("\n".join(out) + "\n", encoding="utf-8")
    staging.replace(path)


def _copy(source: Path, bridge: Path, resources: Path) -> None:
    pykrita = resources / "pykrita"
    copy_plugin_folder(source / PLUGIN_NAME, bridge, pykrita / PLUGIN_NAME)
    shutil.copy2(source / f"{PLUGIN_NAME}.desktop", pykrita / f"{PLUGIN_NAME}.desktop")
    (resources / "actions").mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / f"{PLUGIN_NAME}.action", resources / "actions" / f"{PLUGIN_NAME}.action")


# --- does Krita's Python have pyzmq? ------------------------------------------------------


def krita_python() -> str | None:
    """The system interpreter matching the libpython a distro Krita embeds, if found."""
    if not sys.platform.startswith("linux"):
        return None
    for module in sorted(Path("/usr/lib").glob("*/kritaplugins/kritapykrita.so")) + \
            sorted(Path("/usr/lib").glob("kritaplugins/kritapykrita.so")):
        found = re.search(rb"libpython(3\.\d+)", module.read_bytes())
        if found:
            python = Path(f"/usr/bin/python{found.group(1).decode()}")
            if python.exists():
                return str(python)
    return None


def pyzmq_report(resources: Path) -> list[str]:
    python = krita_python()
    target = resources / "pykrita"
    howto = [f"  a Krita with its own Python (AppImage, Windows, macOS): with a Python of the "
             f"same version as Krita's, run `python -m pip install --target \"{target}\" pyzmq`",
             "  a distro Krita: Debian/Ubuntu `sudo apt install python3-zmq`, Fedora "
             "`sudo dnf install python3-zmq`, Arch `sudo pacman -S python-pyzmq`"]
    if python is None:
        return ["could not tell which Python this Krita uses; it needs pyzmq:", *howto]
    version = pyzmq_version(python)
    if version:
        return [f"pyzmq {version} is importable by {python} (the Python Krita embeds): ready"]
    return [f"pyzmq is NOT importable by {python}, the Python Krita embeds; install it:", *howto]

