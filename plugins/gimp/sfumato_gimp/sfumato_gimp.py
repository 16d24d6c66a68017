#!/usr/bin/env python3
"""sfumato for GIMP 3: inpaint, refine and upscale the active layer through the local sfumato
daemon. Results always arrive as new layers above the source, in one undo step.

PDB: plug-in-sfumato-inpaint, plug-in-sfumato-refine, plug-in-sfumato-generate (text to
image into the selection or the canvas), plug-in-sfumato-expand (grow the canvas and paint
the new border), plug-in-sfumato-edit (change the selection or layer as an instruction
says), plug-in-sfumato-remove (the selected object gone, the background
continues), plug-in-sfumato-select (the selection replaced by the object in it, at a path's
points, named in words, or the subject), plug-in-sfumato-upscale,
plug-in-sfumato-control and plug-in-sfumato-image-prompt (inpaint or refine guided by other
layers: a control image, a reference picture), plug-in-sfumato-preprocess (a control image as
a new layer); menu Filters > sfumato. Every argument is typed and scriptable; an empty
`endpoint` means SFUMATO_ENDPOINT, else tcp://127.0.0.1:5655. Installed by
`sfumato plugins install gimp`, which puts the bridge beside this file as sfumato/bridge/.
"""

from __future__ import annotations

import os
import sys
import traceback

# The vendored bridge (sfumato/bridge/) and gimp_host.py live beside this file: they win over
# anything else on the path.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gi  # noqa: E402

gi.require_version("Gimp", "3.0")
from gi.repository import Gimp, GLib, GObject  # noqa: E402
from gimp_procedures import PROCEDURES, values  # noqa: E402

MENU = "<Image>/Filters/sfumato"
RW = GObject.ParamFlags.READWRITE


def _add_argument(proc: Gimp.Procedure, spec: tuple) -> None:
    kind, name, label, blurb, *rest = spec
    if kind == "str":
        proc.add_string_argument(name, label, blurb, rest[0], RW)
    elif kind == "bool":
        proc.add_boolean_argument(name, label, blurb, rest[0], RW)
    elif kind == "layer":
        proc.add_layer_argument(name, label, blurb, rest[0], RW)
    elif kind == "int":
        proc.add_int_argument(name, label, blurb, *rest, RW)
    else:
        proc.add_double_argument(name, label, blurb, *rest, RW)


def _params(name: str, config: Gimp.ProcedureConfig) -> dict:
    """The request's params: one per argument the task contract gave this procedure."""
    return values(PROCEDURES[name][2], config.get_property)


def _act(name: str, host, client, config: Gimp.ProcedureConfig):
    from sfumato.bridge import actions

    if name == "plug-in-sfumato-regenerate":  # no settings: the recipe has them all
        return _regenerate(host, client)
    model = config.get_property("model") or None
    if name == "plug-in-sfumato-upscale":
        return actions.upscale_layer(host, client, _params(name, config), model,
                                     config.get_property("selection-only"))
    if name == "plug-in-sfumato-preprocess":
        return actions.preprocess_layer(host, client, config.get_property("kind"), model)
    if name in ("plug-in-sfumato-control", "plug-in-sfumato-image-prompt"):
        return _guided(name, host, client, config, model)
    if name == "plug-in-sfumato-generate":
        controls, prompts = _guides(config)
        return actions.generate(host, client, _params(name, config), model,
                                controls=controls, image_prompts=prompts)
    if name == "plug-in-sfumato-edit":
        return actions.edit(host, client, _params(name, config), model)
    if name == "plug-in-sfumato-expand":
        return actions.expand_canvas(host, client, _params(name, config), model)
    if name == "plug-in-sfumato-remove":
        return actions.remove_object(host, client, _params(name, config), model)
    if name == "plug-in-sfumato-select":
        return _select(host, client, config, model)
    action = actions.inpaint_selection if name.endswith("inpaint") else actions.refine
    return action(host, client, _params(name, config), model)


def _guided(name: str, host, client, config: Gimp.ProcedureConfig, model):
    from sfumato.bridge import actions

    operation = config.get_property("operation").strip().lower()
    if operation not in ("inpaint", "refine"):
        return _refused(host, f"The operation must be inpaint or refine, not {operation!r}. "
                        "The image is unchanged.")
    if config.get_property("reference-layer") is None and name.endswith("image-prompt"):
        return _refused(host, "Choose the reference layer whose look to take. The image is "
                        "unchanged.")
    controls, prompts = _guides(config)
    action = actions.inpaint_selection if operation == "inpaint" else actions.refine
    return action(host, client, _params(name, config), model, controls=controls,
                  image_prompts=prompts)


def _guides(config: Gimp.ProcedureConfig):
    """The control (a kind, from a layer or "auto") and image prompt (a reference layer) the
    procedure's guide arguments ask for; none when the kind and the reference are empty."""
    from sfumato.bridge.guides import Control, ImagePrompt

    controls, prompts = [], []
    kind = config.get_property("control-kind").strip()
    if kind:
        layer = config.get_property("control-layer")
        controls.append(Control(
            kind, None if layer is None else str(layer.get_id()),
            config.get_property("control-scale"), config.get_property("control-start"),
            config.get_property("control-end"), config.get_property("control-model") or None))
    reference = config.get_property("reference-layer")
    if reference is not None:
        prompts.append(ImagePrompt(str(reference.get_id()),
                                   config.get_property("reference-weight"),
                                   config.get_property("ip-adapter") or None))
    return controls, prompts


def _select(host, client, config: Gimp.ProcedureConfig, model):
    """Segmentation into the selection; for "points", the first selected path's anchors are
    the points on the object and a second one's the points off it (image coordinates)."""
    from sfumato.bridge.select_object import select_object

    paths = host.image.get_selected_paths() or []
    anchors = [_anchors(path) for path in paths[:2]] + [[], []]
    return select_object(host, client, _params("plug-in-sfumato-select", config), model,
                         config.get_property("mode").strip().lower(), anchors[0], anchors[1],
                         config.get_property("output").strip().lower())


def _anchors(path) -> list:
    """A path's anchor points: GIMP gives each as (control in, anchor, control out)."""
    points = []
    for stroke in path.get_strokes():
        _, controls, _ = path.stroke_get_points(stroke)
        points += [(controls[i], controls[i + 1]) for i in range(2, len(controls), 6)]
    return points


def _regenerate(host, client):
    """The recipe the selected layer keeps, run again on the layer under it (its source:
    results are added directly above their source) and the current selection."""
    from gimp_host import GimpHost
    from sfumato.bridge import actions
    from sfumato.bridge.recipe import RECIPE_KEY

    result = host.layer
    parasite = result.get_parasite(RECIPE_KEY)
    if parasite is None:
        return _refused(host, "Select a layer sfumato made (it keeps the recipe that made "
                        "it) to regenerate it. The image is unchanged.")
    parent = result.get_parent()
    siblings = parent.get_children() if parent is not None else host.image.get_layers()
    below = host.image.get_item_position(result) + 1
    source = siblings[below] if below < len(siblings) else result
    return actions.regenerate(GimpHost(host.image, source, host.interactive), client,
                              bytes(parasite.get_data()).decode())


def _refused(host, message: str):
    from sfumato.bridge.actions import ActionOutcome

    host.show_message(message)
    return ActionOutcome(False, message)


def _fail(procedure: Gimp.Procedure, message: str) -> Gimp.ValueArray:
    # GIMP shows this message for menu runs and hands it to scripts (pdb.get_last_error()).
    return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, GLib.Error(message))


def run(procedure, run_mode, image, drawables, config, data):
    try:
        name = procedure.get_name()
        if len(drawables) != 1 or not isinstance(drawables[0], Gimp.Layer):
            return _fail(procedure, "sfumato works on one layer: select exactly one layer.")
        if image.get_base_type() == Gimp.ImageBaseType.INDEXED:
            return _fail(procedure, "sfumato does not work on indexed images: switch to "
                         "Image > Mode > RGB first.")
        if run_mode == Gimp.RunMode.INTERACTIVE:
            import gimp_dialog

            fields = [spec[1] for spec in PROCEDURES[name][3] if spec[1] != "endpoint"]
            title = PROCEDURES[name][0].replace("_", "").rstrip("…")
            if not gimp_dialog.ask(procedure, config, f"sfumato: {title}", fields):
                return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
        try:
            from gimp_host import GimpHost
            from sfumato.bridge.client import Client
        except ImportError as exc:
            return _fail(procedure, f"sfumato cannot start: {exc}. GIMP's Python needs pyzmq "
                         "(Debian/Ubuntu: apt install python3-zmq); see "
                         "`sfumato plugins install gimp`.")
        host = GimpHost(image, drawables[0], run_mode == Gimp.RunMode.INTERACTIVE)
        with Client(config.get_property("endpoint") or None, timeout_s=30.0,
                    name="gimp") as client:
            outcome = _act(name, host, client, config)
        if not outcome.ok and host.interactive:
            # The host already showed the message; CANCEL keeps GIMP from showing it twice.
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
        if not outcome.ok:
            return _fail(procedure, outcome.message)
        return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())
    except Exception:
        return _fail(procedure, "sfumato failed unexpectedly:\n" + traceback.format_exc())


class SfumatoGimp(Gimp.PlugIn):
    def do_query_procedures(self):
        return list(PROCEDURES)

    def do_set_i18n(self, name):
        return False

    def do_create_procedure(self, name):
        label, blurb, _, arguments = PROCEDURES[name]
        proc = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run, None)
        proc.set_image_types("RGB*, GRAY*")
        proc.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        proc.set_menu_label(label)
        proc.add_menu_path(MENU)
        proc.set_documentation(blurb, blurb + ". Needs a running sfumato daemon "
                               "(`sfumato serve`).", name)
        proc.set_attribution("sfumato", "sfumato", "2025")
        for spec in arguments:
            _add_argument(proc, spec)
        return proc


if __name__ == "__main__":
    Gimp.main(SfumatoGimp.__gtype__, sys.argv)
