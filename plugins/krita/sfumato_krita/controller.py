"""The plug-in's state, shared by the actions and every docker: settings, the running job,
the daemon's status. Dockers are views of it; actions call `start`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from PyQt5.QtCore import QObject, QTimer, pyqtSignal
from PyQt5.QtGui import QImage
from sfumato.bridge import actions, schema
from sfumato.bridge.actions import ActionError, ActionOutcome
from sfumato.bridge.endpoints import resolve_endpoint
from sfumato.bridge.errors import SfumatoError
from sfumato.bridge.guides import DEFAULT_SCALE, DEFAULT_WEIGHT, Control, ImagePrompt
from sfumato.bridge.recipe import Recipe
from sfumato.bridge.schema import EDIT, EXPAND, INPAINT, UPSCALE

from .daemon_status import CHECKING, DaemonState, from_error, from_report
from .job_runner import JobSignals, JobThread, MainThreadCalls, StatusThread, ThreadedHost
from .krita_host import KritaHost, layer_below, layer_recipe, refusal
from .task_fields import request_params, reused, stored
from .vector_points import layer_points

SETTINGS_GROUP = "sfumato"
STATUS_EVERY_MS = 5000
SHUTDOWN_WAIT_MS = 3000  # a job waiting on the UI thread cannot end while it waits here
TASKS = ("inpaint", "refine", "paint", "generate", "expand", "regenerate", "upscale",
         "remove", "edit", "select")
SELECT_MODES = tuple(schema.SELECT_MODES)  # points: the shapes of vector layers


@dataclass(frozen=True)
class Settings:
    prompt: str = ""
    negative_prompt: str = ""
    model: str = ""  # "" = the daemon's choice
    strength: float = float(INPAINT.param("strength").initial or 1.0)  # 1.0 generates
    # (inpaint); less refines
    generate_values: str = "{}"  # the task settings the artist changed (task_fields.py), JSON
    expand_values: str = "{}"  # the sides (and nothing else) the artist set, JSON
    edit_values: str = "{}"  # edit's own settings (image guidance) the artist set, JSON
    remover: str = ""  # remove's model: "" = the daemon's LaMa or MAT, else Telea
    remove_values: str = "{}"
    segmenter: str = ""  # select's model: "" = a registered one (SAM 3 for words)
    select_mode: str = "selection"  # a SELECT_MODES entry
    select_values: str = "{}"  # words, soft edges, matting model, context (task_fields.py)
    select_output: str = "selection"  # a schema.SELECT_OUTPUTS entry (selection mask: channel)
    select_include: str = ""  # points: the vector layer (uniqueId) whose shapes are on it
    select_exclude: str = ""  # ... and one whose shapes are off it ("" = none)
    upscaler: str = ""
    upscale_values: str = "{}"
    upscale_selection_only: bool = False
    endpoint: str = ""
    control_kind: str = ""  # "" = no control; else a bridge.guides.CONTROL_KINDS entry
    control_layer: str = ""  # a layer's uniqueId; "" = "auto" (made from the image)
    control_scale: float = DEFAULT_SCALE
    image_prompt_layer: str = ""  # a layer's uniqueId; "" = no image prompt
    image_prompt_weight: float = DEFAULT_WEIGHT

    def guides(self) -> dict[str, Any]:
        """The keyword arguments bridge.actions takes for controls and image prompts."""
        guides: dict[str, Any] = {}
        if self.control_kind:
            guides["controls"] = (Control(self.control_kind, self.control_layer or None,
                                          self.control_scale),)
        if self.image_prompt_layer:
            guides["image_prompts"] = (ImagePrompt(self.image_prompt_layer,
                                                   self.image_prompt_weight),)
        return guides

    def diffusion_params(self, task: str) -> dict[str, Any]:
        params: dict[str, Any] = {"prompt": self.prompt, "negative_prompt": self.negative_prompt}
        if task == "refine":
            params["strength"] = self.strength
        params.update(request_params(schema.TASKS[task], stored(self.generate_values)))
        return params

    def expand_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"prompt": self.prompt, "negative_prompt": self.negative_prompt}
        values = {**stored(self.generate_values), **stored(self.expand_values)}
        params.update(request_params(EXPAND, values))
        return params

    def edit_params(self) -> dict[str, Any]:
        """Edit's request: the prompt box is the instruction; the shared settings and edit's
        own, as the artist changed them."""
        params: dict[str, Any] = {"instruction": self.prompt,
                                  "negative_prompt": self.negative_prompt}
        values = {**stored(self.generate_values), **stored(self.edit_values)}
        params.update(request_params(EDIT, values))
        return params

    def remove_params(self) -> dict[str, Any]:
        return request_params(schema.REMOVE, stored(self.remove_values))

    def select_params(self) -> dict[str, Any]:
        return request_params(schema.SEGMENT, stored(self.select_values))

    def upscale_params(self) -> dict[str, Any]:
        return request_params(UPSCALE, stored(self.upscale_values))


class Controller(QObject):
    busy_changed = pyqtSignal(bool)
    progress = pyqtSignal(float, str)
    preview = pyqtSignal(QImage, int)
    message = pyqtSignal(str)
    status_changed = pyqtSignal(object)  # DaemonState
    settings_changed = pyqtSignal(object)  # Settings
    settings_reused = pyqtSignal(object)  # Settings, from a result's recipe: show them all
    finished = pyqtSignal(object)  # ActionOutcome

    def __init__(self, app: Any) -> None:
        super().__init__()
        self.app = app
        self.calls = MainThreadCalls()
        self.settings = self._load_settings()
        self.status = DaemonState(CHECKING, "checking the daemon…")
        self.last_message = ""
        self.last_outcome: ActionOutcome | None = None
        self._job: JobThread | None = None
        self._signals: JobSignals | None = None
        self._cancel = threading.Event()
        self._status_thread: StatusThread | None = None
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.refresh_status)
        self._timer.start(STATUS_EVERY_MS)
        app.notifier().applicationClosing.connect(self.shutdown)

    def shutdown(self) -> None:
        """Krita is quitting: stop asking, cancel a running job and let the threads end (a
        QThread destroyed while it runs takes Krita down with it)."""
        self._timer.stop()
        self._cancel.set()
        for thread in (self._job, self._status_thread):
            if thread is not None:
                thread.wait(SHUTDOWN_WAIT_MS)

    # --- settings -----------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return resolve_endpoint(self.settings.endpoint or None)

    def update(self, **changes: Any) -> None:
        old = self.settings
        self.settings = replace(old, **changes)
        for name, value in changes.items():
            self.app.writeSetting(SETTINGS_GROUP, name, str(value))
        self.settings_changed.emit(self.settings)
        if self.settings.endpoint != old.endpoint:
            self.refresh_status()

    def reuse_settings(self) -> bool:
        """The active layer's recipe (a result sfumato made) as the docker's settings."""
        document = self.app.activeDocument()
        node = document.activeNode() if document is not None else None
        text = layer_recipe(document, node) if node is not None else None
        if text is None:
            self._say("Pick a layer sfumato made (it keeps the recipe that made it) to reuse "
                      "its settings.")
            return False
        try:
            recipe = Recipe.from_json(text)
        except SfumatoError as exc:
            self._say(f"sfumato: {exc.message}")
            return False
        self.update(model=recipe.model or "", **reused(recipe.params))
        self.settings_reused.emit(self.settings)
        return True

    def _load_settings(self) -> Settings:
        loaded: dict[str, Any] = {}
        for name, default in Settings().__dict__.items():
            raw = self.app.readSetting(SETTINGS_GROUP, name, "")
            if raw == "":
                continue
            try:
                loaded[name] = raw == "True" if isinstance(default, bool) else type(default)(raw)
            except ValueError:
                continue
        return Settings(**loaded)

    # --- jobs -----------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._job is not None

    def start(self, task: str) -> bool:
        """Run `task` on the active layer ("paint", the docker's Generate: inpaint at
        strength 1, else refine; "generate": a new picture from the prompt)."""
        if self.busy:
            self._say("sfumato is already working: wait for it, or press Cancel.")
            return False
        document = self.app.activeDocument()
        node = document.activeNode() if document is not None else None
        refused = refusal(document, node)
        recipe = None
        if refused is None and task == "regenerate":
            # the selected result's recipe, painted on its source: the layer under it
            recipe = layer_recipe(document, node)
            if recipe is None:
                refused = ("Pick a layer sfumato made (it keeps the recipe that made it) to "
                           "regenerate it. The image is unchanged.")
            else:
                node = layer_below(node) or node
                refused = refusal(document, node)
        if refused is not None:
            self._say(refused)
            return False
        if task == "paint":
            task = "inpaint" if self.settings.strength >= 1.0 else "refine"
        settings = self.settings
        points: tuple[list[Any], list[Any]] = ([], [])
        if task == "select" and settings.select_mode == "points":
            try:  # read here, on the UI thread: Krita's API is not thread-safe
                points = (layer_points(document, settings.select_include, "on the object"),
                          layer_points(document, settings.select_exclude, "off the object")
                          if settings.select_exclude else [])
            except ActionError as exc:
                self._say(str(exc))
                return False
        host = KritaHost(document, node, self.app)
        self._cancel = threading.Event()
        signals = JobSignals()
        signals.progress.connect(self.progress)
        signals.preview.connect(self.preview)
        signals.message.connect(self._say)
        signals.finished.connect(self._finished)
        threaded = ThreadedHost(host, self.calls, signals, self._cancel)
        self._signals = signals
        self._job = JobThread(_work(task, settings, recipe, points), threaded, self.endpoint)
        self.last_message = ""
        self.busy_changed.emit(True)
        self.progress.emit(0.0, f"sfumato {task}: starting")
        self._job.start()
        return True

    def cancel(self) -> None:
        if self.busy:
            self._cancel.set()
            self.progress.emit(0.0, "sfumato: cancelling…")

    def _finished(self, outcome: ActionOutcome) -> None:
        if self._job is not None:
            self._job.wait()
        self._job = None
        self._signals = None
        self.last_outcome = outcome
        if outcome.ok and not outcome.layers:  # select: the selection changed, no layer
            self.progress.emit(1.0, "sfumato: done")
        elif outcome.ok:
            self.progress.emit(1.0, "sfumato: added " + ", ".join(outcome.layers))
        else:
            self.progress.emit(0.0, "sfumato: nothing changed")
        self.busy_changed.emit(False)
        self.finished.emit(outcome)
        self.refresh_status()

    def _say(self, text: str) -> None:
        self.last_message = text
        self.message.emit(text)
        window = self.app.activeWindow()
        view = window.activeView() if window is not None else None
        if view is not None:  # also on the canvas, for artists who hid the docker
            from PyQt5.QtGui import QIcon

            view.showFloatingMessage(text.splitlines()[0], QIcon(), 6000, 1)

    # --- the daemon's status --------------------------------------------------------------

    def refresh_status(self) -> None:
        if self._status_thread is not None:
            return  # one question at a time; the answer comes soon
        thread = StatusThread(self.endpoint)
        # bound methods of this UI-thread object: the answers are queued to the UI thread
        thread.answered.connect(self._on_report)
        thread.failed.connect(self._on_status_error)
        thread.finished.connect(self._status_done)
        self._status_thread = thread
        thread.start()

    def _status_done(self) -> None:
        if self._status_thread is not None:
            self._status_thread.wait()
        self._status_thread = None

    def _on_report(self, report: Any) -> None:
        self._set_status(from_report(report))

    def _on_status_error(self, code: str, text: str) -> None:
        self._set_status(from_error(code, text, self.endpoint))

    def _set_status(self, state: DaemonState) -> None:
        self.status = state
        self.status_changed.emit(state)


def _work(task: str, settings: Settings, recipe: str | None = None,
          points: tuple[list[Any], list[Any]] = ([], [])) -> Callable[[Any, Any], ActionOutcome]:
    """The job, run in the worker thread with its host and client."""
    model = settings.model or None

    def work(host: Any, client: Any) -> ActionOutcome:
        if task == "regenerate" and recipe is not None:
            return actions.regenerate(host, client, recipe)
        if task == "upscale":
            return actions.upscale_layer(host, client, settings.upscale_params(),
                                         settings.upscaler or None,
                                         settings.upscale_selection_only)
        if task == "generate":
            return actions.generate(host, client, settings.diffusion_params(task), model,
                                    **settings.guides())
        if task == "expand":
            return actions.expand_canvas(host, client, settings.expand_params(), model)
        if task == "edit":
            return actions.edit(host, client, settings.edit_params(), model)
        if task == "remove":
            return actions.remove_object(host, client, settings.remove_params(),
                                         settings.remover or None)
        if task == "select":
            from sfumato.bridge.select_object import select_object

            return select_object(host, client, settings.select_params(),
                                 settings.segmenter or None, settings.select_mode,
                                 points[0], points[1], settings.select_output)
        action = actions.inpaint_selection if task == "inpaint" else actions.refine
        return action(host, client, settings.diffusion_params(task), model,
                      **settings.guides())

    return work


_shared: Controller | None = None


def shared_controller(app: Any) -> Controller:
    """The one controller of this Krita process (made on the UI thread, on first use)."""
    global _shared
    if _shared is None:
        _shared = Controller(app)
    return _shared
