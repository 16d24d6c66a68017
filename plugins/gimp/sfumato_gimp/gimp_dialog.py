"""The dialog shown for interactive runs: GIMP builds it from the procedure's arguments."""

from __future__ import annotations

from collections.abc import Sequence

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("GimpUi", "3.0")
from gi.repository import Gimp, GimpUi  # noqa: E402


def ask(procedure: Gimp.Procedure, config: Gimp.ProcedureConfig, title: str,
        fields: Sequence[str]) -> bool:
    """Let the artist edit `fields` of `config`; False when they cancelled."""
    GimpUi.init("sfumato_gimp")
    dialog = GimpUi.ProcedureDialog.new(procedure, config, title)
    dialog.fill(list(fields))
    try:
        return bool(dialog.run())
    finally:
        dialog.destroy()
