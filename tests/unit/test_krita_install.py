"""`sfumato plugins install krita`: the layout Krita's pykrita expects, the bridge vendored, the
.action file Krita reads shortcuts from, and kritarc edited without losing anything."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from sfumato.core.install.installer import install_plugin
from sfumato.core.install.krita import enable_in_kritarc

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_install_lays_out_plugin_desktop_action_and_vendored_bridge(tmp_path: Path) -> None:
    report = install_plugin("krita", str(tmp_path / "res"))
    pykrita = tmp_path / "res" / "pykrita"
    desktop = (pykrita / "sfumato_krita.desktop").read_text()
    assert "ServiceTypes=Krita/PythonPlugin" in desktop
    assert "X-KDE-Library=sfumato_krita" in desktop
    plugin = pykrita / "sfumato_krita"
    for name in ("__init__.py", "extension.py", "docker.py", "krita_host.py",
                 "pixel_formats.py", "controller.py", "job_runner.py", "daemon_status.py"):
        assert (plugin / name).is_file(), name
    assert (plugin / "sfumato" / "bridge" / "actions.py").is_file()
    assert not (plugin / "sfumato" / "__init__.py").exists()  # a namespace package
    actions = ET.parse(tmp_path / "res" / "actions" / "sfumato_krita.action").getroot()
    names = {a.get("name"): a.findtext("shortcut") for a in actions.iter("Action")}
    assert set(names) == {"sfumato_inpaint", "sfumato_refine", "sfumato_generate",
                          "sfumato_expand", "sfumato_regenerate", "sfumato_reuse_settings",
                          "sfumato_upscale",
                          "sfumato_remove", "sfumato_edit", "sfumato_select"}
    assert all(names.values())
    assert "Python Plugin Manager" in report  # not enabled: says how to
    assert "pyzmq" in report


def test_installed_copy_imports_its_vendored_bridge_without_krita(tmp_path: Path) -> None:
    install_plugin("krita", str(tmp_path / "res"))
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "import sfumato_krita.krita_host as h, sfumato.bridge.actions as a\n"
            "print(a.__file__)\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "res" / "pykrita")],
                         capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.strip().startswith(str(tmp_path / "res" / "pykrita" / "sfumato_krita"))


def test_reinstall_replaces_the_old_copy(tmp_path: Path) -> None:
    install_plugin("krita", str(tmp_path))
    stale = tmp_path / "pykrita" / "sfumato_krita" / "stale.py"
    stale.write_text("raise SystemExit")
    install_plugin("krita", str(tmp_path))
    assert not stale.exists()
    assert not (tmp_path / "pykrita" / "sfumato_krita.installing").exists()


def test_enable_writes_kritarc(tmp_path: Path) -> None:
    kritarc = tmp_path / "kritarc"
    report = install_plugin("krita", str(tmp_path / "res"), enable=True, kritarc=str(kritarc))
    assert kritarc.read_text() == "[python]\nenable_sfumato_krita=true\n"
    assert str(kritarc) in report


def test_enable_keeps_everything_else_in_kritarc(tmp_path: Path) -> None:
    kritarc = tmp_path / "kritarc"
    kritarc.write_text("[General]\nfoo=1\n\n[python]\nenable_scripter=true\n"
                       "enable_sfumato_krita=false\n\n[theme]\nTheme=Krita dark\n")
    enable_in_kritarc(kritarc, "sfumato_krita")
    enable_in_kritarc(kritarc, "sfumato_krita")  # twice: still one line
    text = kritarc.read_text()
    assert text == ("[General]\nfoo=1\n\n[python]\nenable_scripter=true\n"
                    "enable_sfumato_krita=true\n\n[theme]\nTheme=Krita dark\n")


def test_enable_adds_a_python_group_when_missing(tmp_path: Path) -> None:
    kritarc = tmp_path / "kritarc"
    kritarc.write_text("[General]\nfoo=1\n")
    enable_in_kritarc(kritarc, "sfumato_krita")
    assert kritarc.read_text() == "[General]\nfoo=1\n\n[python]\nenable_sfumato_krita=true\n"


def test_cli_offers_krita(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "sfumato.core", "plugins", "install", "krita",
                           "--dest", str(tmp_path), "--enable", "--kritarc",
                           str(tmp_path / "kritarc")], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "pykrita" / "sfumato_krita" / "krita_host.py").is_file()
    assert "enable_sfumato_krita=true" in (tmp_path / "kritarc").read_text()
