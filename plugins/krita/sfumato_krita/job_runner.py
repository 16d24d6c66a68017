"""Network work off Krita's UI thread.

A job runs `bridge.actions` in a QThread. Krita's API is not thread-safe, so every host call
that touches it is run on the UI thread (`MainThreadCalls`, a blocking queued signal), while
progress, previews and messages go back as plain queued signals and the cancel flag is a
`threading.Event` the UI sets. The UI thread never waits on the network.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any

from PyQt5.QtCore import QObject, Qt, QThread, pyqtSignal
from PyQt5.QtGui import QImage
from sfumato.bridge.actions import ActionOutcome
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.raster import Layout, Raster
from sfumato.bridge.selection import Rect

STATUS_TIMEOUT_S = 2.0
JOB_TIMEOUT_S = 30.0


class _Box:
    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.result: Any = None
        self.error: BaseException | None = None


class MainThreadCalls(QObject):
    """Runs callables on the thread this object lives in (create it on Krita's UI thread)."""

    _call = pyqtSignal(object)

    def __init__(self) -> None:
        super().__init__()
        self._call.connect(self._run, Qt.BlockingQueuedConnection)

    def call(self, fn: Callable[[], Any]) -> Any:
        if QThread.currentThread() is self.thread():
            return fn()
        box = _Box(fn)
        self._call.emit(box)  # returns once the UI thread ran it
        if box.error is not None:
            raise box.error
        return box.result

    def _run(self, box: _Box) -> None:
        try:
            box.result = box.fn()
        except BaseException as exc:  # handed back to the worker thread, raised there
            box.error = exc


class ThreadedHost:
    """The HostDocument the actions see in the worker thread: Krita calls go to the UI
    thread, feedback goes out through `signals`."""

    def __init__(self, host: Any, calls: MainThreadCalls, signals: JobSignals,
                 cancel: threading.Event) -> None:
        self.host = host
        self.calls = calls
        self.signals = signals
        self.cancel = cancel

    def layer_bounds(self) -> Rect:
        return self.calls.call(self.host.layer_bounds)

    def read_pixels(self, rect: Rect, accepted: Collection[Layout]) -> Raster:
        return self.calls.call(lambda: self.host.read_pixels(rect, accepted))

    def read_layer(self, layer: str, rect: Rect | None,
                   accepted: Collection[Layout]) -> Raster | None:
        return self.calls.call(lambda: self.host.read_layer(layer, rect, accepted))

    def selection_bounds(self) -> Rect | None:
        return self.calls.call(self.host.selection_bounds)

    def read_selection(self, rect: Rect) -> Raster | None:
        return self.calls.call(lambda: self.host.read_selection(rect))

    def add_layer(self, raster: Raster, x: int, y: int, name: str) -> None:
        self.calls.call(lambda: self.host.add_layer(raster, x, y, name))

    def scale_image(self, factor: float) -> None:
        self.calls.call(lambda: self.host.scale_image(factor))

    def canvas_size(self) -> tuple[int, int]:
        width, height = self.calls.call(self.host.canvas_size)
        return int(width), int(height)

    def grow_canvas(self, left: int, top: int, right: int, bottom: int) -> None:
        self.calls.call(lambda: self.host.grow_canvas(left, top, right, bottom))

    def replace_selection(self, mask: Raster, x: int, y: int) -> None:
        self.calls.call(lambda: self.host.replace_selection(mask, x, y))

    def add_channel(self, mask: Raster, x: int, y: int, name: str) -> None:
        self.calls.call(lambda: self.host.add_channel(mask, x, y, name))

    def keep_recipe(self, text: str) -> None:
        self.calls.call(lambda: self.host.keep_recipe(text))

    def progress(self, fraction: float, text: str) -> None:
        self.signals.progress.emit(float(fraction), text)

    def show_preview(self, raster: Raster, step: int) -> None:
        image = preview_image(raster)
        if image is not None:
            self.signals.preview.emit(image, int(step))

    def cancel_requested(self) -> bool:
        return self.cancel.is_set()

    @contextmanager
    def undo_group(self, name: str) -> Iterator[None]:
        group = self.host.undo_group(name)
        self.calls.call(group.__enter__)
        try:
            yield
        finally:
            self.calls.call(lambda: group.__exit__(None, None, None))

    def show_message(self, text: str) -> None:
        self.signals.message.emit(text)


def preview_image(raster: Raster) -> QImage | None:
    """A step preview as a QImage (QImage, unlike QPixmap, may be made off the UI thread)."""
    formats = {Layout.RGBA8: QImage.Format_RGBA8888, Layout.BGRA8: QImage.Format_ARGB32}
    if raster.layout not in formats or raster.is_empty:
        return None
    data = raster.packed_bytes()
    image = QImage(data, raster.width, raster.height, raster.width * 4, formats[raster.layout])
    return image.copy()  # own the pixels: `data` goes away with this frame


class JobSignals(QObject):
    progress = pyqtSignal(float, str)
    preview = pyqtSignal(QImage, int)
    message = pyqtSignal(str)
    finished = pyqtSignal(object)  # the ActionOutcome


class JobThread(QThread):
    """Runs `work(host, client)` with a fresh client to `endpoint`; emits `finished`."""

    def __init__(self, work: Callable[[Any, Any], ActionOutcome], host: ThreadedHost,
                 endpoint: str | None) -> None:
        super().__init__()
        self.work = work
        self.host = host
        self.endpoint = endpoint

    def run(self) -> None:
        try:
            from sfumato.bridge.client import Client

            with Client(self.endpoint, timeout_s=JOB_TIMEOUT_S, name="krita") as client:
                outcome = self.work(self.host, client)
        except Exception:
            text = "sfumato failed unexpectedly:\n" + traceback.format_exc()
            self.host.show_message(text)
            outcome = ActionOutcome(False, text)
        self.host.signals.finished.emit(outcome)


class StatusThread(QThread):
    """One status request; emits `answered(report)` or `failed(code, message)`."""

    answered = pyqtSignal(object)
    failed = pyqtSignal(str, str)

    def __init__(self, endpoint: str | None) -> None:
        super().__init__()
        self.endpoint = endpoint

    def run(self) -> None:
        try:
            from sfumato.bridge.client import Client, ClientError

            with Client(self.endpoint, timeout_s=STATUS_TIMEOUT_S, reconnects=0,
                        name="krita-status") as client:
                report = client.status()
        except ClientError as exc:
            self.failed.emit(exc.code, exc.message)
            return
        except Exception as exc:  # a bug, not the daemon's answer: show what it was
            self.failed.emit(ErrorCode.INTERNAL.value, f"{type(exc).__name__}: {exc}")
            return
        self.answered.emit(report)
