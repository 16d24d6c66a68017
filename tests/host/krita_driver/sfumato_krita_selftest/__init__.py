# A test-only pykrita plug-in for tests/host/test_krita_plugin.py: it drives the REAL sfumato
# plug-in inside the real Krita as an artist would (docker widgets found by objectName, the
# plug-in's own actions triggered), and writes what it saw under $SFUMATO_KRITA_OUT:
#   report.json               per case: layers, messages, bounds, flags; then Krita quits
#   <case>/composite_before.raw, composite_after.raw   Document.pixelData (B,G,R,A u8)
#   <case>/new_<i>.raw        each new layer's pixels over its bounds
#   docker.png                the screen with the docker shown
# Everything runs from QTimer callbacks: the UI thread is never blocked, since the plug-in's
# worker thread needs it for every Krita call.
import json
import os
import time
import traceback

from krita import Extension, InfoObject, Krita, Selection
from PyQt5.QtCore import QTimer
from PyQt5.QtWidgets import QApplication

OUT = os.environ.get("SFUMATO_KRITA_OUT", "")
CASES_FILE = os.environ.get("SFUMATO_KRITA_CASES", "")
POLL_MS = 100


def _widget(name):
    for widget in QApplication.allWidgets():
        if widget.objectName() == name:
            return widget
    return None


class Driver:
    def __init__(self):
        with open(CASES_FILE) as f:
            self.cases = json.load(f)
        self.report = {"cases": {}, "started": time.time()}
        self.doc = None
        self.source = None
        self.steps = []

    # --- scheduling: a list of (callable returning True when done) run one after another --
    def run(self, steps):
        self.steps = list(steps)
        QTimer.singleShot(POLL_MS, self._tick)

    def _tick(self):
        while self.steps:
            step, deadline = self.steps[0] if isinstance(self.steps[0], tuple) else \
                (self.steps[0], None)
            if deadline is None:
                deadline = time.monotonic() + 180
                self.steps[0] = (step, deadline)
            try:
                done = step()
            except Exception:
                self.report.setdefault("errors", []).append(traceback.format_exc())
                done = True
            if not done:
                if time.monotonic() > deadline:
                    self.report.setdefault("errors", []).append(
                        f"timed out in {getattr(step, '__name__', step)}")
                    self.steps.pop(0)
                QTimer.singleShot(POLL_MS, self._tick)
                return
            self.steps.pop(0)
        self.finish()

    # --- the document -----------------------------------------------------------------
    def wait_for_document(self):
        doc = Krita.instance().activeDocument()
        if doc is None or doc.activeNode() is None:
            return False
        self.doc = doc
        doc.setBatchmode(True)
        self.source = doc.activeNode()
        self.report["source"] = self.source.name()
        self.report["canvas"] = [doc.width(), doc.height()]
        self.report["depth"] = [self.source.colorModel(), self.source.colorDepth(),
                                self.source.colorProfile()]
        return True

    def show_docker(self):
        dock = _widget("sfumato_docker")
        if dock is None:
            return False
        dock.show()
        dock.raise_()
        window = Krita.instance().activeWindow()
        if window is not None:
            # No window manager under Xvfb to maximize it: fill the screen by hand, so that
            # the whole docker is on screen for the screenshot.
            window.qwindow().setGeometry(QApplication.primaryScreen().availableGeometry())
        return True

    def layers(self):
        return [{"name": n.name(), "id": n.uniqueId().toString(), "type": n.type(),
                 "bounds": _rect(n.bounds())} for n in self.doc.rootNode().childNodes()]

    def add_stripes(self, name):
        """A layer of vertical lines at the bottom of the stack (under the opaque source, so
        the picture does not change): something a control or a reference can be made of."""
        w, h = self.doc.width(), self.doc.height()
        row = b"".join(b"\xff\xff\xff\xff" if x % 8 < 2 else b"\x20\x20\x20\xff"
                       for x in range(w))
        node = self.doc.createNode(name, "paintlayer")
        node.setPixelData(row * h, 0, 0, w, h)
        self.doc.rootNode().addChildNode(node, None)
        self.doc.waitForDone()
        self.doc.setActiveNode(self.source)

    # --- the docker case ----------------------------------------------------------------
    def wait_for_models(self, model):
        def step():
            combo = _widget("sfumato_model")
            return combo is not None and combo.findData(model) >= 0
        return step

    def wait_for_state(self, state):
        def step():
            status = _widget("sfumato_status")
            if status is None or status.property("state") != state:
                return False
            self.report["cases"]["status"] = {"status": status.text(),
                                              "state": status.property("state")}
            return True
        return step

    def record_docker(self):
        names = {}
        for widget in QApplication.allWidgets():
            name = widget.objectName()
            if name.startswith("sfumato_"):
                names[name] = {"class": type(widget).__name__, "visible": widget.isVisible()}
        combo = _widget("sfumato_model")
        upscaler = _widget("sfumato_upscaler")
        status = _widget("sfumato_status")
        dock = _widget("sfumato_docker")
        top_left = dock.mapToGlobal(dock.rect().topLeft())
        path = os.path.join(OUT, "docker.png")
        QApplication.primaryScreen().grabWindow(0).save(path)
        self.report["cases"]["docker"] = {
            "widgets": names,
            "models": [combo.itemText(i) for i in range(combo.count())],
            "upscalers": [upscaler.itemText(i) for i in range(upscaler.count())],
            "status": status.text(), "state": status.property("state"),
            "dock_rect": [top_left.x(), top_left.y(), dock.width(), dock.height()],
            "dock_floating": dock.isFloating(), "screenshot": path,
            "actions": {name: _action_facts(name) for name in
                        ("sfumato_inpaint", "sfumato_refine", "sfumato_upscale")},
        }
        return True

    # --- action cases -------------------------------------------------------------------
    def case_steps(self, case):
        state = {}
        name = case["name"]
        folder = os.path.join(OUT, name)

        def prepare():
            os.makedirs(folder, exist_ok=True)
            if case.get("add_layer"):
                self.add_stripes(case["add_layer"])
                _widget("sfumato_refresh_layers").click()
            for layer_name, svg in case.get("vector_layers", {}).items():  # under the source
                layer = self.doc.createVectorLayer(layer_name)
                self.doc.rootNode().addChildNode(layer, None)
                layer.addShapesFromSvg(svg)
                self.doc.waitForDone()
                _widget("sfumato_refresh_layers").click()
            for key, value in case.get("widgets", {}).items():
                set_widget(key, value)
            self.doc.setActiveNode(self.source)
            if case.get("selection"):
                selection = Selection()
                selection.select(*case["selection"], 255)
                if case.get("feather"):
                    selection.feather(case["feather"])
                self.doc.setSelection(selection)
            else:
                _deselect(self.doc)
            self.doc.waitForDone()
            self.doc.setActiveNode(self.source)  # a selection mask may have become active
            self.doc.waitForDone()
            w, h = self.doc.width(), self.doc.height()
            state["before_ids"] = {n.uniqueId().toString()
                                   for n in self.doc.rootNode().childNodes()}
            state["source_before"] = bytes(self.source.pixelData(0, 0, w, h))
            state["selection_before"] = _selection_bytes(self.doc)
            _write(folder, "composite_before.raw", bytes(self.doc.pixelData(0, 0, w, h)))
            state["canvas_before"] = [w, h]
            state["started"] = time.monotonic()
            if case.get("on_new_of"):  # act on an earlier case's result layer (regenerate)
                (earlier,) = self.report["cases"][case["on_new_of"]]["new"]
                self.doc.setActiveNode(_node(self.doc, earlier["id"]))
                self.doc.waitForDone()
            Krita.instance().action(case["action"]).trigger()  # the plug-in's own action
            return True

        def maybe_cancel():
            if not case.get("cancel"):
                return True
            bar = _widget("sfumato_progress")
            if bar.value() > 0 or "step" in _widget("sfumato_progress_text").text():
                _widget("sfumato_cancel").click()
                state["cancel_clicked"] = True
                return True
            return not _busy()

        def wait_done():
            return not _busy()

        def record():
            self.doc.waitForDone()
            w, h = self.doc.width(), self.doc.height()
            after = self.layers()
            new = [layer for layer in after if layer["id"] not in state["before_ids"]]
            by_id = {n.uniqueId().toString(): n for n in self.doc.rootNode().childNodes()}
            for index, layer in enumerate(new):
                x, y, lw, lh = layer["bounds"]
                _write(folder, f"new_{index}.raw", bytes(by_id[layer["id"]].pixelData(
                    x, y, lw, lh)))
            _write(folder, "composite_after.raw", bytes(self.doc.pixelData(0, 0, w, h)))
            resized = [w, h] != state["canvas_before"]
            info = InfoObject()
            info.setProperty("alpha", True)
            exported = self.doc.exportImage(os.path.join(folder, "composite.png"), info)
            preview = _widget("sfumato_preview").pixmap()
            result = {
                "seconds": time.monotonic() - state["started"],
                "layers": after, "new": new, "canvas": [w, h],
                "canvas_before": state["canvas_before"],
                "recipes": [_recipe(self.doc, layer["id"]) for layer in new],
                "docker_after": {"prompt": _widget("sfumato_prompt").toPlainText(),
                                 "steps": _widget("sfumato_steps").value(),
                                 "model": _widget("sfumato_model").currentData()},
                "source_index": [layer["id"] for layer in after].index(
                    self.source.uniqueId().toString()),
                "source_unchanged": resized or bytes(self.source.pixelData(0, 0, w, h))
                == state["source_before"],
                "selection_unchanged": resized or _selection_bytes(self.doc)
                == state["selection_before"],
                "message": _widget("sfumato_message").text(),
                "progress_text": _widget("sfumato_progress_text").text(),
                "preview_shown": preview is not None and not preview.isNull(),
                "cancel_clicked": state.get("cancel_clicked", False),
                "exported": bool(exported),
                "source_masks": [c.name() for c in self.source.childNodes()],
                "resolution": [self.doc.xRes(), self.doc.yRes()],
            }
            self.report["cases"][name] = result
            _write(folder, "selection_after.raw", _selection_bytes(self.doc))
            if case.get("undo") and (new or case.get("undo_selection")):
                Krita.instance().action("edit_undo").trigger()
            return True

        def after_undo():
            self.doc.waitForDone()
            if case.get("undo") and self.report["cases"][name]["new"]:
                self.report["cases"][name]["layers_after_undo"] = [
                    layer["name"] for layer in self.layers()]
            if case.get("undo_selection"):  # one Undo: the selection there was before
                _write(folder, "selection_after_undo.raw", _selection_bytes(self.doc))
                w, h = self.doc.width(), self.doc.height()
                self.report["cases"][name]["source_unchanged_after_undo"] = bytes(
                    self.source.pixelData(0, 0, w, h)) == state["source_before"]
            return True

        def wait_status_error():
            if not case.get("expect_status_error"):
                return True
            status = _widget("sfumato_status")
            if status.property("state") == "error":
                self.report["cases"][name]["status"] = status.text()
                return True
            return False

        def restore():
            for key, value in case.get("restore", {}).items():
                set_widget(key, value)
            return True

        return [prepare, maybe_cancel, wait_done, record, after_undo, wait_status_error,
                restore]

    def start(self):
        steps = [self.wait_for_document, self.show_docker]
        for case in self.cases:
            if case["name"] == "docker":
                steps += [self.wait_for_models(case["model"]), _pause(0.5), self.record_docker]
            elif case["name"] == "status":
                steps += [self.wait_for_state(case["state"])]
            else:
                steps += self.case_steps(case)
        self.run(steps)

    def finish(self):
        self.report["seconds"] = time.time() - self.report["started"]
        with open(os.path.join(OUT, "report.json"), "w") as f:
            json.dump(self.report, f, indent=1)
        QTimer.singleShot(200, self.quit)

    def quit(self):
        if self.doc is not None:
            self.doc.waitForDone()
            self.doc.setModified(False)  # right before quitting, else "save?" hangs
        Krita.instance().action("file_quit").trigger()


def _node(doc, layer_id):
    return next(n for n in doc.rootNode().childNodes() if n.uniqueId().toString() == layer_id)


def _recipe(doc, layer_id):
    """The recipe annotation sfumato keeps for a layer (issue 19), or None."""
    data = doc.annotation("sfumato-recipe-" + layer_id.strip("{}"))
    text = bytes(data).decode() if data is not None else ""
    return text or None


def _pause(seconds):
    until = []

    def step():
        if not until:
            until.append(time.monotonic() + seconds)
        return time.monotonic() >= until[0]
    return step


def _busy():
    button = _widget("sfumato_generate")
    return button is not None and not button.isEnabled()


def _deselect(doc):
    action = Krita.instance().action("deselect")
    if action is not None:
        action.trigger()
    doc.waitForDone()


def _selection_bytes(doc):
    selection = doc.selection()
    if selection is None:
        return b""
    return bytes(selection.pixelData(0, 0, doc.width(), doc.height()))


def _rect(rect):
    return [rect.x(), rect.y(), rect.width(), rect.height()]


def _write(folder, name, data):
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def _action_facts(name):
    action = Krita.instance().action(name)
    if action is None:
        return None
    return {"text": action.text(), "shortcut": action.shortcut().toString()}


def set_widget(name, value):
    """Change a docker widget the way an artist's input would (its own signals fire)."""
    widget = _widget(name)
    if widget is None:
        raise RuntimeError(f"no widget named {name}")
    kind = type(widget).__name__
    if kind == "QPlainTextEdit":
        widget.setPlainText(value)
    elif kind == "QLineEdit":
        widget.setText(value)
        widget.editingFinished.emit()
    elif kind == "QComboBox":
        index = widget.findData(value)
        if index < 0:
            index = widget.findText(value)
        if index < 0:
            raise RuntimeError(f"{name} does not list {value!r}")
        widget.setCurrentIndex(index)
    elif kind == "QCheckBox":
        widget.setChecked(bool(value))
    else:
        widget.setValue(value)


class SelfTest(Extension):
    def setup(self):
        if OUT and CASES_FILE:
            Krita.instance().notifier().windowCreated.connect(
                lambda: QTimer.singleShot(300, self.begin))

    def createActions(self, window):
        pass

    def begin(self):
        self.driver = Driver()
        self.driver.start()


Krita.instance().addExtension(SelfTest(Krita.instance()))
