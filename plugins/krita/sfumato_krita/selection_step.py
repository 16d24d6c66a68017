"""The new selection as ONE undo step in Krita 5.1, whose Python API can only set a selection
off the undo stack (`Document.setSelection`). Krita's own undoable command is made to hold
the previous selection: its "Deselect" action (or, with nothing selected, "Select All") is
triggered first, an undo step whose Undo puts back exactly the selection there was; the mask
is then set. So one Undo restores the previous selection (Krita's history names the step
"Deselect" / "Select All"; Redo after it gives that step's own result, not the mask: run
Select again).

(Tried and dropped: Krita's "Select Opaque" on a transient layer. A layer added through
libkis never reaches the view's layer model, so the action cannot be pointed at it; one
added by Krita's own action is a second undo step.)

It needs the document in the active view; without one (kritarunner, scripts) the caller
falls back. No `krita` import at module level."""

from __future__ import annotations

from typing import Any

from sfumato.bridge.raster import Raster

DESELECT_ACTION = "deselect"
SELECT_ALL_ACTION = "select_all"


def select_as_one_step(host: Any, mask: Raster, x: int, y: int) -> bool:
    """The document's selection becomes `mask` (gray8 at image (x, y)), one Undo restoring
    the previous one; False (nothing changed) when Krita's actions cannot be used here."""
    document = host.document
    name = DESELECT_ACTION if document.selection() is not None else SELECT_ALL_ACTION
    action = host.app.action(name) if host._active_view() is not None else None
    if action is None:
        return False
    from krita import Selection

    action.trigger()  # Krita's undoable step, holding the selection there was
    document.waitForDone()
    selection = Selection()
    selection.setPixelData(mask.packed_bytes(), x, y, mask.width, mask.height)
    document.setSelection(selection)
    document.waitForDone()
    return True
