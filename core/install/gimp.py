"""The GIMP 3 plug-in installer (Krita's is krita.py): its files,
the bridge vendored beside them, and a check that GIMP's Python can import pyzmq (the
plug-in's one dependency beyond the standard library).

Layout written: DEST/sfumato_gimp/sfumato_gimp.py (executable; GIMP runs a plug-in only from
a folder named like its file), the other plug-in modules, and DEST/sfumato_gimp/sfumato/bridge/.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from sfumato.core.install.host_python import pyzmq_version
from sfumato.core.install.plugin_folder import bridge_source, copy_plugin_folder, plugins_folder

PLUGIN_NAME = "sfumato_gimp"
GIMP_VERSION_DIR = "3.0"


def install_gimp(dest: str | None) -> str:
    """Install the GIMP plug-in into `dest` (default: GIMP's user plug-ins folder); a report."""
    plugins_dir = Path(dest).expanduser() if dest else gimp_plugins_dir()
    target = plugins_dir / PLUGIN_NAME
    _copy_plugin(plugin_source(), bridge_source(), target)
    lines = [f"installed the GIMP plug-in in {target}",
             "restart GIMP; the actions are under Filters > sfumato"]
    lines.extend(pyzmq_report())
    return "\n".join(lines)


def gimp_plugins_dir() -> Path:
    """GIMP 3's user plug-ins folder on this OS (GIMP3_DIRECTORY wins, as in GIMP)."""
    override = os.environ.get("GIMP3_DIRECTORY")
    if override:
        return Path(override).expanduser() / "plug-ins"
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or home / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        flatpak = home / ".var" / "app" / "org.gimp.GIMP" / "config"
        native = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
        # A Flatpak GIMP reads only its sandboxed config; prefer it when only it exists.
        has_native = (native / "GIMP" / GIMP_VERSION_DIR).is_dir()
        base = flatpak if (flatpak / "GIMP").is_dir() and not has_native else native
    return base / "GIMP" / GIMP_VERSION_DIR / "plug-ins"


def plugin_source() -> Path:
    """The GIMP plug-in's source folder."""
    return plugins_folder("gimp", f"{PLUGIN_NAME}/{PLUGIN_NAME}.py") / PLUGIN_NAME


def _copy_plugin(source: Path, bridge: Path, target: Path) -> None:
    copy_plugin_folder(source, bridge, target)
    (target / f"{PLUGIN_NAME}.py").chmod(0o755)


# --- does GIMP's Python have pyzmq? -------------------------------------------------------


def gimp_python() -> str | None:
    """The interpreter GIMP runs Python plug-ins with, as far as can be told from here."""
    for interp in _interp_files():
        for line in interp.read_text(errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip() in ("python3", "python") and value.strip():
                return value.strip()
    if sys.platform.startswith("linux") and Path("/usr/bin/python3").exists():
        return "/usr/bin/python3"  # distro GIMP: `#!/usr/bin/env python3` finds the system one
    return shutil.which("python3") or shutil.which("python")


def _interp_files() -> list[Path]:
    roots = [Path("/usr/lib/gimp"), Path("/usr/local/lib/gimp"),
             Path("/Applications/GIMP.app/Contents/Resources/lib/gimp")]
    roots += Path("/usr/lib").glob("*/gimp")
    for env in ("ProgramFiles", "LOCALAPPDATA"):
        base = os.environ.get(env)
        if base:
            roots.append(Path(base) / "GIMP 3" / "lib" / "gimp")
            roots.append(Path(base) / "Programs" / "GIMP 3" / "lib" / "gimp")
    found: list[Path] = []
    for root in roots:
        found.extend(sorted((root / GIMP_VERSION_DIR / "interpreters").glob("*.interp")))
    return [path for path in found if path.name != "default.interp"]


def pyzmq_report() -> list[str]:
    python = gimp_python()
    if python is None:
        return ["could not find the Python GIMP uses; make sure it can `import zmq`:",
                *_pyzmq_howto("python3")]
    version = pyzmq_version(python)
    if version:
        return [f"pyzmq {version} is importable by {python} (the Python GIMP uses): ready"]
    return [f"pyzmq is NOT importable by {python}, the Python GIMP uses; install it:",
            *_pyzmq_howto(python)]


def _pyzmq_howto(python: str) -> list[str]:
    if sys.platform == "win32" or sys.platform == "darwin":
        return [f"  {python} -m pip install --user pyzmq   (GIMP's bundled Python; if it has no "
                f"pip, run `{python} -m ensurepip --user` first)"]
    return ["  Debian/Ubuntu: sudo apt install python3-zmq",
            "  Fedora: sudo dnf install python3-zmq    Arch: sudo pacman -S python-pyzmq",
            f"  otherwise: {python} -m pip install --user pyzmq",
            "  Flatpak GIMP: its sandbox has its own Python; pip-install pyzmq inside it"]
