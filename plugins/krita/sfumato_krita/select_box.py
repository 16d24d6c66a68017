"""The docker's Select object box (issue 18): what to select (the object in the rough
selection, at a vector layer's shapes, named in words, or the main subject), the segmenter and
the contract's fields, and where the result goes (the selection, a selection mask, or the
object cut out as a new layer). Built into the docker; its widgets bind to the controller
through the docker's `_set` and `_add_fields`."""

from __future__ import annotations

from typing import Any

from PyQt5.QtWidgets import QComboBox, QFormLayout, QGroupBox, QPushButton, QWidget
from sfumato.bridge.schema import SELECT_MODES, SELECT_OUTPUTS

from .controller import Settings
from .task_fields import SELECT_FIELDS
from .vector_points import vector_layers

OUTPUT_LABELS = {"selection": "replace the selection", "channel": "a selection mask",
                 "layer": "cut out as a new layer"}


def build_select_box(docker: Any, parent: QWidget) -> QWidget:
    """The box; sets docker.select_mode, .segmenter, .select_fields, .select_output,
    .select_include, .select_exclude and .select (the button)."""
    box = QGroupBox("Select object", parent)
    box.setObjectName("sfumato_select_group")
    form = QFormLayout(box)
    docker.select_mode = _combo(box, "sfumato_select_mode", {m: m for m in SELECT_MODES})
    docker.select_mode.setToolTip("\n".join(f"{m}: {t}" for m, t in SELECT_MODES.items()))
    docker.select_mode.currentIndexChanged.connect(
        lambda _: docker._set(select_mode=docker.select_mode.currentData() or "selection"))
    form.addRow("Select", docker.select_mode)
    docker.select_include = _combo(box, "sfumato_select_include", {})
    docker.select_include.setToolTip("points: the vector layer whose shapes are on the object")
    docker.select_include.currentIndexChanged.connect(
        lambda _: docker._set(select_include=docker._combo_value(docker.select_include)))
    form.addRow("Points on", docker.select_include)
    docker.select_exclude = _combo(box, "sfumato_select_exclude", {})
    docker.select_exclude.setToolTip("points: a vector layer whose shapes are off the object")
    docker.select_exclude.currentIndexChanged.connect(
        lambda _: docker._set(select_exclude=docker._combo_value(docker.select_exclude)))
    form.addRow("Points off", docker.select_exclude)
    docker.segmenter = _combo(box, "sfumato_segmenter", {})
    docker.segmenter.currentIndexChanged.connect(
        lambda _: docker._set(segmenter=docker._combo_value(docker.segmenter)))
    form.addRow("Model", docker.segmenter)
    docker.select_fields = docker._add_fields(box, form, SELECT_FIELDS, "select_values")
    docker.select_output = _combo(box, "sfumato_select_output", OUTPUT_LABELS)
    docker.select_output.setToolTip("\n".join(f"{OUTPUT_LABELS[o]}: {t}"
                                              for o, t in SELECT_OUTPUTS.items()))
    docker.select_output.currentIndexChanged.connect(
        lambda _: docker._set(select_output=docker.select_output.currentData() or "selection"))
    form.addRow("Result", docker.select_output)
    docker.select = QPushButton("Select", box)
    docker.select.setObjectName("sfumato_select")
    docker.select.setToolTip("Select the object: the selection, a selection mask, or the "
                             "object as a new layer (the source layer stays as it is)")
    docker.select.clicked.connect(lambda: docker.controller.start("select"))
    form.addRow(docker.select)
    return box


def show_select_settings(docker: Any, s: Settings, document: Any) -> None:
    """The box's own widgets from the settings (the contract fields are the docker's)."""
    docker.select_mode.setCurrentIndex(max(0, docker.select_mode.findData(s.select_mode)))
    docker.select_output.setCurrentIndex(max(0, docker.select_output.findData(s.select_output)))
    refresh_vector_layers(docker, s, document)


def refresh_vector_layers(docker: Any, s: Settings, document: Any) -> None:
    """List the document's vector layers for the points, keeping the artist's choices."""
    layers = vector_layers(document)
    for combo, current, empty in ((docker.select_include, s.select_include, "(pick one)"),
                                  (docker.select_exclude, s.select_exclude, "none")):
        combo.blockSignals(True)
        try:
            combo.clear()
            combo.addItem(empty, "")
            for layer_id, name in layers:
                combo.addItem(name, layer_id)
            combo.setCurrentIndex(max(0, combo.findData(current)))
        finally:
            combo.blockSignals(False)


def _combo(parent: QWidget, name: str, items: dict[str, str]) -> QComboBox:
    combo = QComboBox(parent)
    combo.setObjectName(name)
    for value, label in items.items():
        combo.addItem(label, value)
    return combo
