"""`sfumato plugins install HOST`: one entry point for the GIMP and Krita installers."""

from __future__ import annotations

from sfumato.bridge.protocol import ErrorCode
from sfumato.core.errors import SfumatoError
from sfumato.core.install.gimp import install_gimp
from sfumato.core.install.krita import install_krita


def install_plugin(host: str, dest: str | None, enable: bool = False,
                   kritarc: str | None = None) -> str:
    """Install the plug-in for `host` into `dest` (default: the editor's user plug-ins
    folder) and return a short report for the terminal. `enable` and `kritarc`: Krita only
    (GIMP enables every plug-in it finds)."""
    if host == "krita":
        return install_krita(dest, enable, kritarc)
    if host != "gimp":
        raise SfumatoError(ErrorCode.BAD_PARAMS,
                           f"no plug-in installer for {host!r}; use gimp or krita")
    return install_gimp(dest)
