"""The wheel maps core/ and bridge/ under the sfumato namespace and ships the console script."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
                    str(out), str(ROOT)], check=True, capture_output=True)
    return next(out.glob("sfumato-*.whl"))


def test_wheel_layout_and_entry_point(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "sfumato/bridge/codec.py" in names
    assert "sfumato/core/daemon/server.py" in names
    assert "sfumato/core/tasks/upscale.py" in names
    assert "sfumato/plugins/gimp/sfumato_gimp/sfumato_gimp.py" in names
    assert "sfumato/plugins/krita/sfumato_krita/krita_host.py" in names
    assert "sfumato/plugins/krita/sfumato_krita.desktop" in names
    assert "sfumato/plugins/krita/sfumato_krita.action" in names
    assert not any(n.startswith(("core/", "bridge/", "tests/")) for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "sfumato = sfumato.core.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_imports_come_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                    str(target), str(wheel)], check=True, capture_output=True)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import sfumato.bridge.client as c, sfumato.core.cli as cli\n"
        "print(c.__file__); print(cli.__file__)\n"
        "cli.build_parser()\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True,
                         text=True, check=True, cwd=tmp_path)
    files = out.stdout.split()
    assert all(f.startswith(str(target)) for f in files), files


def test_krita_plugin_installs_from_the_wheel(wheel: Path, tmp_path: Path) -> None:
    """The installer finds the Krita files (package data included) in an installed wheel."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                    str(target), str(wheel)], check=True, capture_output=True)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from sfumato.core.install.installer import install_plugin\n"
        "from sfumato.core.install.plugin_folder import plugins_folder\n"
        "print(plugins_folder('krita', 'sfumato_krita/__init__.py'))\n"
        "install_plugin('krita', sys.argv[2])\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(target), str(tmp_path / "res")],
                         capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.splitlines()[0].startswith(str(target))
    assert (tmp_path / "res" / "pykrita" / "sfumato_krita.desktop").is_file()
    assert (tmp_path / "res" / "actions" / "sfumato_krita.action").is_file()
    assert (tmp_path / "res" / "pykrita" / "sfumato_krita" / "sfumato" / "bridge").is_dir()
