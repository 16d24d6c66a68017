"""The Extension: Krita actions sfumato_inpaint, sfumato_refine, sfumato_generate (a new
picture from the prompt), sfumato_expand (grow the canvas, paint the border),
sfumato_edit (change the layer or selection as the prompt box's instruction says),
sfumato_remove (the selected object gone), sfumato_select (the selection becomes the object
in it, the objects named in words, or the subject) and
sfumato_upscale (Tools >
Scripts; their default shortcuts come from sfumato_krita.action and can be changed in
Settings > Configure Krita > Keyboard Shortcuts), and the docker's registration."""

from __future__ import annotations

from typing import Any

from krita import DockWidgetFactory, DockWidgetFactoryBase, Extension, Krita

from .controller import shared_controller
from .docker import DOCKER_ID, SfumatoDocker

ACTIONS = {
    "sfumato_inpaint": ("sfumato: Inpaint selection", "inpaint"),
    "sfumato_refine": ("sfumato: Refine", "refine"),
    "sfumato_generate": ("sfumato: Generate new picture", "generate"),
    "sfumato_expand": ("sfumato: Expand canvas", "expand"),
    "sfumato_edit": ("sfumato: Edit by instruction", "edit"),
    "sfumato_regenerate": ("sfumato: Regenerate selected result", "regenerate"),
    "sfumato_remove": ("sfumato: Remove object", "remove"),
    "sfumato_select": ("sfumato: Select object", "select"),
    "sfumato_upscale": ("sfumato: Upscale", "upscale"),
}
REUSE_ACTION = ("sfumato_reuse_settings", "sfumato: Reuse settings of selected result")
MENU = "tools/scripts"


class SfumatoExtension(Extension):
    def __init__(self, parent: Any) -> None:
        super().__init__(parent)

    def setup(self) -> None:
        shared_controller(Krita.instance())  # made on the UI thread, before any docker

    def createActions(self, window: Any) -> None:  # noqa: N802 - Krita's name
        controller = shared_controller(Krita.instance())
        for action_id, (text, task) in ACTIONS.items():
            action = window.createAction(action_id, text, MENU)
            action.triggered.connect(lambda _checked=False, t=task: controller.start(t))
        reuse = window.createAction(*REUSE_ACTION, MENU)
        reuse.triggered.connect(lambda _checked=False: controller.reuse_settings())


def register() -> None:
    app = Krita.instance()
    app.addExtension(SfumatoExtension(app))
    app.addDockWidgetFactory(
        DockWidgetFactory(DOCKER_ID, DockWidgetFactoryBase.DockRight, SfumatoDocker))
