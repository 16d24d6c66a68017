#!/usr/bin/env python3
"""sfumato for GIMP 3: inpaint, refine and upscale the active layer through the local sfumato
daemon. Results always arrive as new layers above the source, in one undo step.

PDB: plug-in-sfumato-inpaint, plug-in-sfumato-refine, plug-in-sfumato-upscale,
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

MENU = "<Image>/Filters/sfumato"
RW = GObject.ParamFlags.READWRITE

# (type, name, label, blurb, *range, default). Order is the PDB argument order.
PROMPT_ARGS = [
    ("str", "prompt", "_Prompt", "What to paint", ""),
    ("str", "negative-prompt", "_Negative prompt", "What to avoid", ""),
    ("str", "model", "_Model", "Model id from `sfumato models list`", ""),
]


def _diffusion_args(strength: float, grow: int, feather: int, context: int) -> list[tuple]:
    # Defaults match the daemon's own for each task (core/tasks/inpaint.py, refine.py).
    return [
        ("double", "strength", "S_trength", "How much to change (0 none, 1 all)",
         0.0, 1.0, strength),
        ("int", "steps", "_Steps", "Denoising steps", 1, 150, 30),
        ("double", "guidance", "_Guidance", "How closely to follow the prompt; 0: the "
         "model's usual", 0.0, 30.0, 0.0),
        ("int", "seed", "S_eed", "Random seed; -1 picks one", -1, 2**31 - 1, -1),
        ("int", "variants", "_Variants", "How many results, one layer each", 1, 8, 1),
        ("int", "grow", "_Grow", "Grow the selection by this many pixels", 0, 1024, grow),
        ("int", "feather", "_Feather", "Soften the result's edge over this many pixels",
         0, 1024, feather),
        ("int", "context", "_Context", "Pixels around the selection the model sees",
         0, 1024, context),
    ]


ENDPOINT_ARG = [
    ("str", "endpoint", "_Daemon", "Daemon address; empty: SFUMATO_ENDPOINT or the default", ""),
]
UPSCALE_ARGS = [
    ("str", "model", "_Model", "Upscaler id; empty: the daemon's default (Real-ESRGAN x4)", ""),
    ("double", "scale", "_Scale", "Scale factor; 0: the model's own", 0.0, 16.0, 4.0),
    ("int", "tile", "_Tile", "Tile size in pixels; 0: automatic", 0, 8192, 0),
    ("bool", "selection-only", "Selection _only",
     "Upscale only the selection into a new layer; the image keeps its size", False),
]


OPERATION_ARG = [
    ("str", "operation", "_Operation", "inpaint (repaint the selection) or refine (rework the "
     "selection, or the whole layer, by strength)", "inpaint"),
]


def _guide_args(control_kind: str, reference_required: bool) -> list[tuple]:
    # Layers as arguments: scripts pass GimpLayer objects, the dialog shows layer pickers.
    reference_blurb = "Layer whose look to take (IP-Adapter)" + (
        "" if reference_required else "; none: no image prompt")
    return [
        ("str", "control-kind", "_Control", "canny, lineart, scribble, softedge, depth, pose, "
         "tile; empty: no control", control_kind),
        ("layer", "control-layer", "Control _layer", "Layer holding the control image; none: "
         "made from the active layer (auto)", True),
        ("double", "control-scale", "Control s_cale", "How strongly to follow it (above 1 "
         "overpowers the prompt)", 0.0, 2.0, 0.6),
        ("double", "control-start", "Control st_art", "Fraction of the steps where it starts",
         0.0, 1.0, 0.0),
        ("double", "control-end", "Control en_d", "Fraction of the steps where it ends",
         0.0, 1.0, 1.0),
        ("str", "control-model", "Control mo_del", "ControlNet or T2I-Adapter id; empty: "
         "one whose id names the kind", ""),
        # none_ok even where required: a missing layer then gets our message, not GIMP's
        # bare calling error
        ("layer", "reference-layer", "_Reference layer", reference_blurb, True),
        ("double", "reference-weight", "Reference _weight", "How much of its look to take",
         0.0, 2.0, 0.6),
        ("str", "ip-adapter", "_IP-Adapter", "IP-Adapter id; empty: one that fits", ""),
    ]


PREPROCESS_ARGS = [
    ("str", "kind", "_Kind", "canny, lineart, scribble, softedge, tile, depth, pose", "canny"),
    ("str", "model", "_Model", "Depth or pose model id for depth or pose; empty: the "
     "registered one", ""),
]


PROCEDURES = {
    "plug-in-sfumato-inpaint": (
        "_Inpaint selection…", "Repaint the selection from a prompt, as a new layer",
        PROMPT_ARGS + _diffusion_args(1.0, 4, 16, 64) + ENDPOINT_ARG,
    ),
    "plug-in-sfumato-refine": (
        "_Refine…", "Rework the selection (or the whole layer) from a prompt, as a new layer",
        PROMPT_ARGS + _diffusion_args(0.4, 0, 16, 32) + ENDPOINT_ARG,
    ),
    "plug-in-sfumato-control": (
        "_Control…", "Inpaint or refine following a control image (ControlNet / T2I-Adapter) "
        "from another layer or made from this one, as a new layer",
        PROMPT_ARGS + OPERATION_ARG + _diffusion_args(1.0, 4, 16, 64)
        + _guide_args("canny", False) + ENDPOINT_ARG,
    ),
    "plug-in-sfumato-image-prompt": (
        "Image _prompt…", "Inpaint or refine taking the look of another layer (IP-Adapter), "
        "as a new layer",
        PROMPT_ARGS + OPERATION_ARG + _diffusion_args(1.0, 4, 16, 64)
        + _guide_args("", True) + ENDPOINT_ARG,
    ),
    "plug-in-sfumato-preprocess": (
        "Control _image from layer…", "A preprocessor's control image (edges, line art, "
        "depth...) of the active layer, as a new layer to paint over",
        PREPROCESS_ARGS + ENDPOINT_ARG,
    ),
    "plug-in-sfumato-upscale": (
        "_Upscale layer…", "Upscale the active layer (the image grows with it), or only the "
        "selection into a new layer", UPSCALE_ARGS + ENDPOINT_ARG,
    ),
}


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


def _diffusion_params(config: Gimp.ProcedureConfig) -> dict:
    params = {
        "prompt": config.get_property("prompt"),
        "negative_prompt": config.get_property("negative-prompt"),
        "strength": config.get_property("strength"),
    }
    for name in ("steps", "variants", "grow", "feather", "context"):
        params[name] = config.get_property(name)
    if config.get_property("guidance") > 0:
        params["guidance"] = config.get_property("guidance")
    if config.get_property("seed") >= 0:
        params["seed"] = config.get_property("seed")
    return params


def _act(name: str, host, client, config: Gimp.ProcedureConfig):
    from sfumato.bridge import actions

    model = config.get_property("model") or None
    if name == "plug-in-sfumato-upscale":
        return actions.upscale_layer(host, client, config.get_property("scale") or None, model,
                                     config.get_property("selection-only"),
                                     config.get_property("tile"))
    if name == "plug-in-sfumato-preprocess":
        return actions.preprocess_layer(host, client, config.get_property("kind"), model)
    if name in ("plug-in-sfumato-control", "plug-in-sfumato-image-prompt"):
        return _guided(name, host, client, config, model)
    action = actions.inpaint_selection if name.endswith("inpaint") else actions.refine
    return action(host, client, _diffusion_params(config), model)


def _guided(name: str, host, client, config: Gimp.ProcedureConfig, model):
    from sfumato.bridge import actions
    from sfumato.bridge.guides import Control, ImagePrompt

    operation = config.get_property("operation").strip().lower()
    if operation not in ("inpaint", "refine"):
        return _refused(host, f"The operation must be inpaint or refine, not {operation!r}. "
                        "The image is unchanged.")
    if config.get_property("reference-layer") is None and name.endswith("image-prompt"):
        return _refused(host, "Choose the reference layer whose look to take. The image is "
                        "unchanged.")
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
    action = actions.inpaint_selection if operation == "inpaint" else actions.refine
    return action(host, client, _diffusion_params(config), model, controls=controls,
                  image_prompts=prompts)


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

            fields = [spec[1] for spec in PROCEDURES[name][2] if spec[1] != "endpoint"]
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
        label, blurb, arguments = PROCEDURES[name]
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
