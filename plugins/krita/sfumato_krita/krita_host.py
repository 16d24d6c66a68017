"""Krita's side of `HostDocument`: one document and its active layer, through libkis.

Translation only; the logic is in bridge/actions.py. Every method touches Krita's API, which
is not thread-safe: call them on Krita's UI thread (job_runner.py marshals the calls there).
No `krita` import at module level, so the translation runs in tests without Krita.

Krita layers are as large as the canvas and read in image coordinates, so the "layer" the
actions see is the canvas rectangle at (0, 0).

Undo (what Krita 5.1's Python API permits): libkis has no undo macro, and
`Node.addChildNode` bypasses the undo stack. A result layer is therefore made by Krita's own
"Add Paint Layer" action (one undo step that removes the layer; redo brings it back with its
pixels) whenever the document is shown in the active view; without a view (kritarunner,
scripts) it falls back to `addChildNode`, which cannot be undone. A whole-layer upscale is two
steps: Krita's own "Scale Image", then the new layer; so is expand: Krita's own "Resize
Canvas", then the fill.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any

from sfumato.bridge.actions import ActionError
from sfumato.bridge.raster import Layout, Raster
from sfumato.bridge.recipe import RECIPE_KEY
from sfumato.bridge.selection import Rect

from .pixel_formats import (
    StorageFormat,
    UnsupportedPixels,
    from_storage,
    storage_format,
    to_storage,
)

ADD_LAYER_ACTION = "add_new_paint_layer"
PREVIOUS_SELECTION = "sfumato: selection before"
SCALE_FILTER = "Bicubic"


def format_of(node: Any) -> StorageFormat:
    """The layer's pixel format; ActionError (a readable refusal) for CMYK, Lab, gray..."""
    try:
        return storage_format(node.colorModel(), node.colorDepth(), node.colorProfile())
    except UnsupportedPixels as exc:
        raise ActionError(str(exc)) from None


def refusal(document: Any, node: Any) -> str | None:
    """Why sfumato cannot work on `node`, or None; cheap, for the UI to say so at once."""
    if document is None or node is None:
        return "Open an image and pick a paint layer first."
    if node.type() != "paintlayer":
        return (f"sfumato works on paint layers; '{node.name()}' is a {node.type() or 'node'}. "
                "Pick a paint layer. The image is unchanged.")
    try:
        format_of(node)
    except ActionError as exc:
        return str(exc)
    return None


class KritaHost:
    """`node` (the active paint layer) of `document`. `app` is `Krita.instance()` (None: no
    GUI actions, as under kritarunner); `notify` shows a message to the artist."""

    def __init__(self, document: Any, node: Any, app: Any = None,
                 notify: Callable[[str], None] | None = None) -> None:
        self.document = document
        self.node = node
        self.app = app
        self.notify = notify
        self.messages: list[str] = []
        self.added: list[Any] = []  # the result layers, in the order made

    # --- reading ------------------------------------------------------------------------

    def layer_bounds(self) -> Rect:
        format_of(self.node)  # refuse CMYK & co. before anything is read or sent
        return Rect(0, 0, self.document.width(), self.document.height())

    def read_pixels(self, rect: Rect, accepted: Collection[Layout]) -> Raster:
        fmt = format_of(self.node)
        data = bytes(self.node.pixelData(rect.x, rect.y, rect.width, rect.height))
        try:
            return from_storage(data, rect.width, rect.height, fmt, accepted)
        except UnsupportedPixels as exc:
            raise ActionError(str(exc)) from None

    def read_layer(self, layer: str, rect: Rect | None,
                   accepted: Collection[Layout]) -> Raster | None:
        """Another layer's pixels (a control or reference picture), found by uniqueId or
        name; what it shows (its projection), so group and filter layers work too."""
        node = find_layer(self.document, layer)
        if node is None:
            return None
        fmt = format_of(node)
        if rect is None:  # the layer's content, inside the canvas
            bounds = node.bounds()
            rect = Rect(bounds.x(), bounds.y(), bounds.width(), bounds.height()).clamped(
                Rect(0, 0, self.document.width(), self.document.height()))
        data = bytes(node.projectionPixelData(rect.x, rect.y, rect.width, rect.height))
        try:
            return from_storage(data, rect.width, rect.height, fmt, accepted)
        except UnsupportedPixels as exc:
            raise ActionError(str(exc)) from None

    def selection_bounds(self) -> Rect | None:
        # Krita's selection keeps its exact bounds (feathered pixels included) itself: no mask
        # pixel is read for this, whatever the canvas size.
        selection = self.document.selection()
        if selection is None:
            return None
        box = Rect(selection.x(), selection.y(), selection.width(), selection.height())
        return box.clamped(Rect(0, 0, self.document.width(), self.document.height()))

    def read_selection(self, rect: Rect) -> Raster | None:
        selection = self.document.selection()
        if selection is None:
            return None
        data = bytes(selection.pixelData(rect.x, rect.y, rect.width, rect.height))
        return Raster(rect.width, rect.height, Layout.GRAY8, data)

    # --- writing ------------------------------------------------------------------------

    def add_layer(self, raster: Raster, x: int, y: int, name: str) -> None:
        self._check_open()
        fmt = format_of(self.node)
        try:
            data = to_storage(raster, fmt)
        except UnsupportedPixels as exc:
            raise ActionError(str(exc)) from None
        layer = self._undoable_layer() or self._plain_layer()
        layer.setName(name)
        if _colour_space(layer) != _colour_space(self.node):
            # Krita's layers may differ from their image (a 16-bit layer in an 8-bit image):
            # the result takes the source layer's colour space, which `data` is made for.
            layer.setColorSpace(*_colour_space(self.node))
        layer.setPixelData(data, x, y, raster.width, raster.height)
        self.added.append(layer)
        self.document.refreshProjection()

    def replace_selection(self, mask: Raster, x: int, y: int) -> None:
        """The document's selection becomes `mask` (gray8, top-left at image (x, y);
        nothing selected outside it); no layer is touched. In the active view: one Undo
        brings the previous selection back exactly (selection_step.py). Without a view
        (scripts): `Document.setSelection`, which Krita 5.1 keeps off the undo stack; the
        previous selection is then kept as a hidden selection mask on the layer ("sfumato:
        selection before"), and the artist is told so."""
        from krita import Selection

        from .selection_step import select_as_one_step

        self._check_open()
        if select_as_one_step(self, mask, x, y):
            return
        before = self.document.selection()
        if before is not None:
            kept = self.document.createSelectionMask(PREVIOUS_SELECTION)
            kept.setSelection(before)
            kept.setVisible(False)
            self.node.addChildNode(kept, None)
            self.show_message(f"sfumato: the selection before is kept as the selection mask "
                              f"'{PREVIOUS_SELECTION}' (this replacement cannot be undone "
                              "here).")
        selection = Selection()
        selection.setPixelData(mask.packed_bytes(), x, y, mask.width, mask.height)
        self.document.setSelection(selection)
        self.document.waitForDone()

    def add_channel(self, mask: Raster, x: int, y: int, name: str) -> None:
        """`mask` kept as a selection mask on the active layer (Krita's channel); the
        document's selection stays as it is."""
        from krita import Selection

        self._check_open()
        selection = Selection()
        selection.setPixelData(mask.packed_bytes(), x, y, mask.width, mask.height)
        node = self.document.createSelectionMask(name)
        node.setSelection(selection)
        self.node.addChildNode(node, None)
        self.document.waitForDone()

    def scale_image(self, factor: float) -> None:
        self._check_open()
        doc = self.document
        width = max(1, round(doc.width() * factor))
        height = max(1, round(doc.height() * factor))
        doc.scaleImage(width, height, int(doc.xRes()), int(doc.yRes()), SCALE_FILTER)
        doc.waitForDone()

    def canvas_size(self) -> tuple[int, int]:
        return self.document.width(), self.document.height()

    def keep_recipe(self, text: str) -> None:
        """What made the layer just added, as a document annotation named after the layer's
        id (`recipe_key`): saved in the .kra."""
        from PyQt5.QtCore import QByteArray

        self.document.setAnnotation(recipe_key(self.added[-1]), "sfumato recipe",
                                    QByteArray(text.encode()))

    def grow_canvas(self, left: int, top: int, right: int, bottom: int) -> None:
        # Krita's own Image > Resize Canvas (one undo step of its own): every layer keeps its
        # pixels, which move by (left, top)
        self._check_open()
        doc = self.document
        doc.resizeImage(-left, -top, doc.width() + left + right, doc.height() + top + bottom)
        doc.waitForDone()

    # --- the artist ---------------------------------------------------------------------

    def progress(self, fraction: float, text: str) -> None:
        pass  # the docker shows progress from the job runner's own signals

    def cancel_requested(self) -> bool:
        return False  # the job runner answers this one off the UI thread

    @contextmanager
    def undo_group(self, name: str) -> Iterator[None]:
        # No undo macro in Krita 5.1's libkis (see the module note); each layer made here is
        # one undo step of its own.
        try:
            yield
        finally:
            self.document.waitForDone()

    def show_message(self, text: str) -> None:
        self.messages.append(text)
        if self.notify is not None:
            self.notify(text)

    # --- small pieces -------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.app is not None and _key(self.document) not in map(_key, self.app.documents()):
            raise ActionError("The document was closed while sfumato worked; nothing was added.")

    def _parent(self) -> Any:
        return self.node.parentNode() or self.document.rootNode()

    def _undoable_layer(self) -> Any | None:
        """A new empty paint layer right above the source, made by Krita's own undoable
        action; None when the document is not in the active view (no action applies)."""
        view = self._active_view()
        if view is None:
            return None
        action = self.app.action(ADD_LAYER_ACTION)
        if action is None:
            return None
        self.document.setActiveNode(self.node)  # the action adds above the active layer
        self.document.waitForDone()
        before = {child.uniqueId() for child in self._parent().childNodes()}
        action.trigger()
        self.document.waitForDone()
        siblings = self._parent().childNodes()
        made = [child for child in siblings if child.uniqueId() not in before]
        if len(made) != 1 or made[0].type() != "paintlayer":
            for child in made:  # not what we asked for: leave the document as it was
                child.remove()
            return None
        return made[0]

    def _plain_layer(self) -> Any:
        layer = self.document.createNode("sfumato", "paintlayer")
        self._parent().addChildNode(layer, self.node)
        return layer

    def _active_view(self) -> Any | None:
        if self.app is None:
            return None
        window = self.app.activeWindow()
        view = window.activeView() if window is not None else None
        if view is None or view.document() is None or \
                _key(view.document()) != _key(self.document):
            return None
        return view


def layer_choices(document: Any) -> list[tuple[str, str]]:
    """(uniqueId, name) of every layer of `document`, top first, groups' children indented."""
    choices: list[tuple[str, str]] = []

    def walk(node: Any, depth: int) -> None:
        for child in reversed(node.childNodes()):
            if child.type().endswith("mask"):
                continue
            choices.append((str(child.uniqueId().toString()), "  " * depth + child.name()))
            walk(child, depth + 1)

    if document is not None:
        walk(document.rootNode(), 0)
    return choices


def find_layer(document: Any, ref: str) -> Any | None:
    """The layer whose uniqueId (or, failing that, name) is `ref`."""
    stack = list(document.rootNode().childNodes())
    by_name = None
    while stack:
        node = stack.pop()
        if str(node.uniqueId().toString()) == ref:
            return node
        if by_name is None and node.name() == ref:
            by_name = node
        stack.extend(node.childNodes())
    return by_name


def layer_recipe(document: Any, node: Any) -> str | None:
    """The recipe that made `node` (kept by `keep_recipe`), or None."""
    data = document.annotation(recipe_key(node))
    text = bytes(data).decode("utf-8", "replace") if data is not None else ""
    return text or None


def layer_below(node: Any) -> Any | None:
    """The sibling directly under `node` (where a result's source is), or None."""
    parent = node.parentNode()
    siblings = parent.childNodes() if parent is not None else []  # bottom first
    ids = [str(child.uniqueId().toString()) for child in siblings]
    here = str(node.uniqueId().toString())
    index = ids.index(here) if here in ids else 0
    return siblings[index - 1] if index > 0 else None


def recipe_key(node: Any) -> str:
    """The annotation that keeps what made `node`: sfumato-recipe-<its uniqueId>."""
    return f"{RECIPE_KEY}-{str(node.uniqueId().toString()).strip('{}')}"


def _colour_space(node: Any) -> tuple[str, str, str]:
    return node.colorModel(), node.colorDepth(), node.colorProfile()


def _key(document: Any) -> str:
    """libkis hands out a new wrapper per call: a document is known by its root's id."""
    return str(document.rootNode().uniqueId().toString())
