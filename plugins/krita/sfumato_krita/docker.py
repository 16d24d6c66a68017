"""The sfumato docker: prompt, model, strength, steps, seed, Generate; upscale; progress with
step previews, Cancel, and the daemon's status. Widgets only bind to the shared controller;
every widget has an objectName (`sfumato_*`) so that tests and stylesheets can find it."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from krita import DockWidget, Krita
from PyQt5.QtCore import Qt
from PyQt5.QtGui import QImage, QPixmap
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from sfumato.bridge.guides import CONTROL_KINDS

from .controller import Settings, shared_controller
from .daemon_status import BUSY, CHECKING, CONNECTED, DaemonState
from .krita_host import layer_choices
from .select_box import build_select_box, refresh_vector_layers, show_select_settings
from .task_fields import (
    EDIT_FIELDS,
    EXPAND_FIELDS,
    GENERATE_FIELDS,
    REMOVE_FIELDS,
    UPSCALE_FIELDS,
    Field,
    stored,
)

DOCKER_ID = "sfumato_docker"
DAEMON_DEFAULT = "(daemon's default)"
PREVIEW_SIZE = 160
STATE_COLOURS = {CONNECTED: "#3a7d44", BUSY: "#b07b12", CHECKING: "#808080"}
ERROR_COLOUR = "#b3261e"


def _named(widget: Any, name: str) -> Any:
    widget.setObjectName(name)
    return widget


class SfumatoDocker(DockWidget):
    def __init__(self) -> None:
        super().__init__()
        self.setObjectName(DOCKER_ID)
        self.setWindowTitle("sfumato")
        self.controller = shared_controller(Krita.instance())
        self._building = True
        self._layers: tuple[tuple[str, str], ...] | None = None
        self.setWidget(self._build())
        self._show_settings(self.controller.settings)
        self._building = False
        c = self.controller
        c.status_changed.connect(self._show_status)
        c.busy_changed.connect(self._show_busy)
        c.progress.connect(self._show_progress)
        c.preview.connect(self._show_preview)
        c.message.connect(self._show_message)
        c.settings_reused.connect(self._show_reused)
        self._show_status(c.status)
        self._show_busy(c.busy)
        c.refresh_status()

    def canvasChanged(self, canvas: Any) -> None:  # noqa: N802 - Krita's name
        # jobs work on whatever document is active when they start; the layer pickers follow
        self._refresh_layers()

    # --- building -----------------------------------------------------------------------

    def _build(self) -> QWidget:
        root = _named(QWidget(self), "sfumato_panel")
        layout = QVBoxLayout(root)

        self.status = _named(QLabel(root), "sfumato_status")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        layout.addWidget(self.status)

        self.prompt = _named(QPlainTextEdit(root), "sfumato_prompt")
        self.prompt.setPlaceholderText("What to paint in the selection")
        self.prompt.setMaximumHeight(70)
        self.prompt.textChanged.connect(
            lambda: self._set(prompt=self.prompt.toPlainText()))
        layout.addWidget(self.prompt)
        self.negative = _named(QLineEdit(root), "sfumato_negative_prompt")
        self.negative.setPlaceholderText("What to avoid (negative prompt)")
        self.negative.textChanged.connect(lambda text: self._set(negative_prompt=text))
        layout.addWidget(self.negative)

        form = QFormLayout()
        self.model = _named(QComboBox(root), "sfumato_model")
        self.model.currentIndexChanged.connect(
            lambda _: self._set(model=self._combo_value(self.model)))
        form.addRow("Model", self.model)
        self.strength = _named(QSpinBox(root), "sfumato_strength")
        self.strength.setRange(1, 100)
        self.strength.setSuffix(" %")
        self.strength.setToolTip("100 %: paint the selection anew; less: refine what is there")
        self.strength.valueChanged.connect(lambda v: self._set(strength=v / 100.0))
        form.addRow("Strength", self.strength)
        # every other setting of the task contract, one widget each (task_fields.py)
        self.generate_fields = self._add_fields(root, form, GENERATE_FIELDS, "generate_values")
        layout.addLayout(form)

        buttons = QHBoxLayout()
        self.generate = _named(QPushButton("Generate", root), "sfumato_generate")
        self.generate.setToolTip("Inpaint the selection (strength 100 %) or refine it")
        self.generate.clicked.connect(lambda: self.controller.start("paint"))
        buttons.addWidget(self.generate)
        self.new_picture = _named(QPushButton("New picture", root), "sfumato_new_picture")
        self.new_picture.setToolTip("A new picture from the prompt (SDXL, SD 1.5, FLUX) in the "
                                    "selection, or over the whole canvas; a layer per variant")
        self.new_picture.clicked.connect(lambda: self.controller.start("generate"))
        buttons.addWidget(self.new_picture)
        self.cancel = _named(QPushButton("Cancel", root), "sfumato_cancel")
        self.cancel.clicked.connect(self.controller.cancel)
        buttons.addWidget(self.cancel)
        layout.addLayout(buttons)
        results = QHBoxLayout()  # on a result layer: its recipe (issue 19)
        self.regenerate = _named(QPushButton("Regenerate", root), "sfumato_regenerate")
        self.regenerate.setToolTip("Paint the selected sfumato layer again: its settings, a "
                                   "new seed")
        self.regenerate.clicked.connect(lambda: self.controller.start("regenerate"))
        results.addWidget(self.regenerate)
        self.reuse = _named(QPushButton("Reuse settings", root), "sfumato_reuse")
        self.reuse.setToolTip("Fill this docker with the settings the selected sfumato layer "
                              "was made with")
        self.reuse.clicked.connect(self.controller.reuse_settings)
        results.addWidget(self.reuse)
        layout.addLayout(results)

        self.progress = _named(QProgressBar(root), "sfumato_progress")
        self.progress.setRange(0, 1000)
        self.progress.setFormat("%p%")
        layout.addWidget(self.progress)
        self.progress_text = _named(QLabel(root), "sfumato_progress_text")
        layout.addWidget(self.progress_text)
        self.preview = _named(QLabel(root), "sfumato_preview")
        self.preview.setAlignment(Qt.AlignCenter)
        self.preview.hide()  # room for it only once a job sends one
        layout.addWidget(self.preview)
        self.message = _named(QLabel(root), "sfumato_message")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextSelectableByMouse)
        layout.addWidget(self.message)

        layout.addWidget(self._build_guides(root))
        layout.addWidget(self._build_expand(root))
        layout.addWidget(self._build_edit(root))
        layout.addWidget(self._build_remove(root))
        layout.addWidget(build_select_box(self, root))
        layout.addWidget(self._build_upscale(root))

        endpoint_row = QFormLayout()
        self.endpoint = _named(QLineEdit(root), "sfumato_endpoint")
        self.endpoint.setPlaceholderText(self.controller.endpoint)
        self.endpoint.editingFinished.connect(
            lambda: self._set(endpoint=self.endpoint.text().strip()))
        endpoint_row.addRow("Daemon", self.endpoint)
        layout.addLayout(endpoint_row)
        layout.addStretch(1)
        return root

    def _build_guides(self, parent: QWidget) -> QWidget:
        """A control (edges, depth, pose... from a layer or made from the image) and an image
        prompt (a reference layer), for Generate and the inpaint/refine actions."""
        box = _named(QGroupBox("Control and reference", parent), "sfumato_guides_group")
        form = QFormLayout(box)
        self.control_kind = _named(QComboBox(box), "sfumato_control_kind")
        self.control_kind.addItem("none", "")
        for kind in CONTROL_KINDS:
            self.control_kind.addItem(kind, kind)
        self.control_kind.currentIndexChanged.connect(
            lambda _: self._set(control_kind=self._combo_value(self.control_kind)))
        form.addRow("Control", self.control_kind)
        self.control_layer = _named(QComboBox(box), "sfumato_control_layer")
        self.control_layer.setToolTip("The layer holding the control picture, or made from "
                                      "the image by the daemon")
        self.control_layer.currentIndexChanged.connect(
            lambda _: self._set(control_layer=self._combo_value(self.control_layer)))
        form.addRow("from", self.control_layer)
        self.control_scale = _named(QDoubleSpinBox(box), "sfumato_control_scale")
        self.control_scale.setRange(0.0, 2.0)
        self.control_scale.setSingleStep(0.1)
        self.control_scale.valueChanged.connect(lambda v: self._set(control_scale=v))
        form.addRow("Control strength", self.control_scale)
        self.image_prompt_layer = _named(QComboBox(box), "sfumato_image_prompt_layer")
        self.image_prompt_layer.setToolTip("A layer whose look the result should take")
        self.image_prompt_layer.currentIndexChanged.connect(
            lambda _: self._set(image_prompt_layer=self._combo_value(self.image_prompt_layer)))
        form.addRow("Reference", self.image_prompt_layer)
        self.image_prompt_weight = _named(QDoubleSpinBox(box), "sfumato_image_prompt_weight")
        self.image_prompt_weight.setRange(0.0, 2.0)
        self.image_prompt_weight.setSingleStep(0.1)
        self.image_prompt_weight.valueChanged.connect(lambda v: self._set(image_prompt_weight=v))
        form.addRow("Reference weight", self.image_prompt_weight)
        self.refresh_layers = _named(QPushButton("Refresh layer lists", box),
                                     "sfumato_refresh_layers")
        self.refresh_layers.clicked.connect(self._refresh_layers)
        form.addRow(self.refresh_layers)
        return box

    def _refresh_layers(self) -> None:
        """List the active document's layers in the control and reference pickers, keeping
        the artist's choices; untouched when nothing changed (no flicker while picking)."""
        document = Krita.instance().activeDocument()
        choices = tuple(layer_choices(document))
        if choices == self._layers:
            return
        refresh_vector_layers(self, self.controller.settings, document)
        self._layers = choices
        s = self.controller.settings
        self._fill_layers(self.control_layer, "auto (made from the image)", s.control_layer)
        self._fill_layers(self.image_prompt_layer, "none", s.image_prompt_layer)

    def _fill_layers(self, combo: QComboBox, empty: str, current: str) -> None:
        combo.blockSignals(True)
        try:
            combo.clear()
            combo.addItem(empty, "")
            for layer_id, name in self._layers or ():
                combo.addItem(name, layer_id)
            combo.setCurrentIndex(max(0, combo.findData(current)))
        finally:
            combo.blockSignals(False)

    def _build_expand(self, parent: QWidget) -> QWidget:
        """Grow the canvas by the pixels per side and paint the border (an inpaint model);
        prompt, steps, seed... are the ones above."""
        box = _named(QGroupBox("Expand canvas", parent), "sfumato_expand_group")
        form = QFormLayout(box)
        self.expand_fields = self._add_fields(box, form, EXPAND_FIELDS, "expand_values")
        self.expand = _named(QPushButton("Expand", box), "sfumato_expand")
        self.expand.setToolTip("Grow the canvas and paint the new border from the picture's "
                               "edge, as a new layer over the active one")
        self.expand.clicked.connect(lambda: self.controller.start("expand"))
        form.addRow(self.expand)
        return box

    def _build_edit(self, parent: QWidget) -> QWidget:
        """Edit by instruction (issue 19): the prompt box says what to change ("make it
        night"); an edit model (InstructPix2Pix, FLUX Kontext, Qwen-Image-Edit) changes the
        selection or the whole layer, the result exactly over it."""
        box = _named(QGroupBox("Edit by instruction", parent), "sfumato_edit_group")
        form = QFormLayout(box)
        self.edit_fields = self._add_fields(box, form, EDIT_FIELDS, "edit_values")
        self.edit = _named(QPushButton("Edit", box), "sfumato_edit")
        self.edit.setToolTip("Change the selection (or the whole layer) as the prompt says, "
                             "e.g. \"make it night\", with an edit model; a new layer")
        self.edit.clicked.connect(lambda: self.controller.start("edit"))
        form.addRow(self.edit)
        return box

    def _build_remove(self, parent: QWidget) -> QWidget:
        """Remove the selected object (issue 17): LaMa / MAT, or an inpaint model over
        their fill; no prompt needed."""
        box = _named(QGroupBox("Remove object", parent), "sfumato_remove_group")
        form = QFormLayout(box)
        self.remover = _named(QComboBox(box), "sfumato_remover")
        self.remover.setToolTip("LaMa or MAT: one quick pass; an inpaint model refines their "
                                "fill. Daemon's default: its LaMa or MAT, else OpenCV Telea")
        self.remover.currentIndexChanged.connect(
            lambda _: self._set(remover=self._combo_value(self.remover)))
        form.addRow("Model", self.remover)
        self.remove_fields = self._add_fields(box, form, REMOVE_FIELDS, "remove_values")
        self.remove = _named(QPushButton("Remove", box), "sfumato_remove")
        self.remove.setToolTip("The selection filled with what surrounds it, as a new layer")
        self.remove.clicked.connect(lambda: self.controller.start("remove"))
        form.addRow(self.remove)
        return box

    def _build_upscale(self, parent: QWidget) -> QWidget:
        box = _named(QGroupBox("Upscale", parent), "sfumato_upscale_group")
        form = QFormLayout(box)
        self.upscaler = _named(QComboBox(box), "sfumato_upscaler")
        self.upscaler.currentIndexChanged.connect(
            lambda _: self._set(upscaler=self._combo_value(self.upscaler)))
        form.addRow("Model", self.upscaler)
        self.upscale_fields = self._add_fields(box, form, UPSCALE_FIELDS, "upscale_values")
        self.selection_only = _named(QCheckBox("Selection only (image keeps its size)", box),
                                     "sfumato_upscale_selection_only")
        self.selection_only.toggled.connect(lambda on: self._set(upscale_selection_only=on))
        form.addRow(self.selection_only)
        self.upscale = _named(QPushButton("Upscale", box), "sfumato_upscale")
        self.upscale.clicked.connect(lambda: self.controller.start("upscale"))
        form.addRow(self.upscale)
        return box

    def _add_fields(self, parent: QWidget, form: QFormLayout, fields: Sequence[Field],
                    setting: str) -> dict[str, tuple[Field, Any]]:
        """A widget per contract field; a change is kept under `setting` (JSON), by name."""
        made = {}
        for spec in fields:
            widget = _named(_field_widget(parent, spec), spec.object_name)
            widget.setToolTip(spec.tip)
            _on_change(widget, spec, lambda value, name=spec.name: self._set_value(
                setting, name, value))
            form.addRow(spec.label, widget)
            made[spec.name] = (spec, widget)
        return made

    def _set_value(self, setting: str, name: str, value: Any) -> None:
        values = stored(getattr(self.controller.settings, setting))
        values[name] = value
        self._set(**{setting: json.dumps(values, sort_keys=True)})

    # --- controller -> widgets ----------------------------------------------------------

    def _set(self, **changes: Any) -> None:
        if not self._building:
            self.controller.update(**changes)

    def _show_settings(self, s: Settings) -> None:
        self.prompt.setPlainText(s.prompt)
        self.negative.setText(s.negative_prompt)
        self.strength.setValue(round(s.strength * 100))
        for made, setting in ((self.generate_fields, s.generate_values),
                              (self.expand_fields, s.expand_values),
                              (self.edit_fields, s.edit_values),
                              (self.remove_fields, s.remove_values),
                              (self.select_fields, s.select_values),
                              (self.upscale_fields, s.upscale_values)):
            values = stored(setting)
            for spec, widget in made.values():
                _show_value(widget, spec, values.get(spec.name, spec.initial))
        self.selection_only.setChecked(s.upscale_selection_only)
        self.endpoint.setText(s.endpoint)
        self._fill(self.model, (), s.model)
        self._fill(self.upscaler, (), s.upscaler)
        self._fill(self.remover, (), s.remover)
        self._fill(self.segmenter, (), s.segmenter)
        show_select_settings(self, s, Krita.instance().activeDocument())
        self.control_kind.setCurrentIndex(max(0, self.control_kind.findData(s.control_kind)))
        self.control_scale.setValue(s.control_scale)
        self.image_prompt_weight.setValue(s.image_prompt_weight)
        self._refresh_layers()

    def _show_reused(self, s: Settings) -> None:
        self._building = True
        try:
            self._show_settings(s)
        finally:
            self._building = False
        self._show_status(self.controller.status)  # the daemon's model lists, kept

    def _show_status(self, state: DaemonState) -> None:
        self._refresh_layers()  # the status ticks every few seconds: layers added since show
        colour = STATE_COLOURS.get(state.state, ERROR_COLOUR)
        self.status.setText(state.text)
        self.status.setStyleSheet(f"color: {colour};")
        self.status.setProperty("state", state.state)
        s = self.controller.settings
        self._building = True
        try:
            if state.state in (CONNECTED, BUSY):  # keep the lists while the daemon is away
                self._fill(self.model, state.diffusion_models, s.model)
                self._fill(self.upscaler, state.upscalers, s.upscaler)
                self._fill(self.remover, state.removers, s.remover)
                self._fill(self.segmenter, state.segmenters, s.segmenter)
        finally:
            self._building = False

    def _show_busy(self, busy: bool) -> None:
        self.generate.setEnabled(not busy)
        self.new_picture.setEnabled(not busy)
        self.regenerate.setEnabled(not busy)
        self.expand.setEnabled(not busy)
        self.edit.setEnabled(not busy)
        self.remove.setEnabled(not busy)
        self.select.setEnabled(not busy)
        self.upscale.setEnabled(not busy)
        self.cancel.setEnabled(busy)
        if busy:
            self.message.clear()
            self.preview.clear()
            self.preview.hide()

    def _show_progress(self, fraction: float, text: str) -> None:
        self.progress.setValue(round(max(0.0, min(1.0, fraction)) * 1000))
        self.progress_text.setText(text)

    def _show_preview(self, image: QImage, step: int) -> None:
        pixmap = QPixmap.fromImage(image).scaled(PREVIEW_SIZE, PREVIEW_SIZE, Qt.KeepAspectRatio,
                                                 Qt.SmoothTransformation)
        self.preview.setPixmap(pixmap)
        self.preview.setToolTip(f"step {step}")
        self.preview.show()

    def _show_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.setStyleSheet(f"color: {ERROR_COLOUR};")

    # --- small pieces -------------------------------------------------------------------

    @staticmethod
    def _combo_value(combo: QComboBox) -> str:
        value = combo.currentData()
        return value if isinstance(value, str) else ""

    @staticmethod
    def _fill(combo: QComboBox, ids: tuple[str, ...], current: str) -> None:
        """List `ids` after the daemon's-default entry, keeping the artist's choice (even one
        the daemon does not list right now, marked so)."""
        combo.blockSignals(True)
        try:
            combo.clear()
            combo.addItem(DAEMON_DEFAULT, "")
            for model_id in ids:
                combo.addItem(model_id, model_id)
            if current and current not in ids:
                combo.addItem(f"{current} (not on the daemon)", current)
            combo.setCurrentIndex(max(0, combo.findData(current)))
        finally:
            combo.blockSignals(False)


# --- contract fields as Qt widgets -------------------------------------------------------------


def _field_widget(parent: QWidget, spec: Field) -> Any:
    if spec.kind is bool:
        return QCheckBox(parent)
    if spec.choices:
        combo = QComboBox(parent)
        for choice in spec.choices:
            combo.addItem(choice, choice)
        return combo
    if spec.kind is str:
        return QLineEdit(parent)
    box = QSpinBox(parent) if spec.kind is int else QDoubleSpinBox(parent)
    if spec.kind is float:
        box.setDecimals(2)
        box.setSingleStep(0.5 if spec.high > 2 else 0.05)
    box.setRange(spec.low, spec.high)
    if spec.absent_text:
        box.setSpecialValueText(spec.absent_text)  # shown at the minimum, which means absent
    return box


def _on_change(widget: Any, spec: Field, call: Callable[[Any], None]) -> None:
    if spec.kind is bool:
        widget.toggled.connect(call)
    elif spec.choices:
        widget.currentIndexChanged.connect(lambda _: call(widget.currentData()))
    elif spec.kind is str:
        widget.textChanged.connect(call)
    else:
        widget.valueChanged.connect(call)


def _show_value(widget: Any, spec: Field, value: Any) -> None:
    widget.blockSignals(True)
    try:
        if spec.kind is bool:
            widget.setChecked(bool(value))
        elif spec.choices:
            widget.setCurrentIndex(max(0, widget.findData(value)))
        elif spec.kind is str:
            widget.setText(str(value or ""))
        else:
            widget.setValue(value if isinstance(value, int | float) else spec.initial)
    finally:
        widget.blockSignals(False)
