"""The GIMP procedures and their arguments, made from the task contract (bridge/schema.py).

Host-free (no `gi`): the contract test imports it to check that every GIMP argument starts at
the daemon's default, within the daemon's range. Each argument is a tuple
(type, name, label, blurb, *range, default); the order is the PDB argument order.
"""

from __future__ import annotations

from typing import Any

from sfumato.bridge.schema import (
    CONTROL_END,
    CONTROL_KINDS,
    CONTROL_SCALE,
    CONTROL_START,
    EDIT,
    EXPAND,
    GENERATE,
    IMAGE_PROMPT_WEIGHT,
    INPAINT,
    PREPROCESS,
    REFINE,
    REMOVE,
    SEGMENT,
    SELECT_MODES,
    SELECT_OUTPUTS,
    UPSCALE,
    Param,
    TaskSchema,
)

GIMP_INT_MAX = 2**31 - 1  # GIMP's int arguments are 32-bit signed
Argument = tuple[Any, ...]


def argument(param: Param, name: str = "") -> Argument:
    """One GIMP argument for `param`: its wire name with '-' (or `name`), its range widened
    to hold the placeholder that means "absent" (seed -1), starting at the contract's
    initial value."""
    blurb = param.help[:1].upper() + param.help[1:]
    name, label = name or param.gimp_name, param.label
    if param.kind is str:
        return ("str", name, label, blurb, param.initial or "")
    if param.kind is bool:
        return ("bool", name, label, blurb, bool(param.initial))
    low = param.low if param.absent is None else min(param.low or 0, param.absent)
    high = param.high
    if param.kind is int:
        return ("int", name, label, blurb, int(low or 0), min(int(high or 0), GIMP_INT_MAX),
                int(param.initial or 0))
    return ("double", name, label, blurb, float(low or 0), float(high or 0),
            float(param.initial or 0))


def task_arguments(schema: TaskSchema) -> list[Argument]:
    return [argument(param) for param in schema.params]


def values(schema: TaskSchema, get: Any) -> dict[str, Any]:
    """The request's params from a procedure config (`get(name)` reads one argument):
    placeholders that mean "absent" are left out, for the daemon's defaults."""
    read = {p.name: get(p.gimp_name) for p in schema.params}
    return {name: value for name, value in read.items()
            if not schema.param(name).means_absent(value)}


MODEL_ARG = ("str", "model", "_Model", "Model id from `sfumato models list`", "")
ENDPOINT_ARG = ("str", "endpoint", "_Daemon",
                "Daemon address; empty: SFUMATO_ENDPOINT or the default", "")
UPSCALER_ARG = ("str", "model", "_Model",
                "Upscaler id (a GAN upscaler or a SUPIR model); empty: the daemon's default "
                "(Real-ESRGAN x4)", "")
SELECTION_ONLY_ARG = ("bool", "selection-only", "Selection _only",
                      "Upscale only the selection into a new layer; the image keeps its size",
                      False)
OPERATION_ARG = ("str", "operation", "_Operation", "inpaint (repaint the selection) or refine "
                 "(rework the selection, or the whole layer, by strength)", "inpaint")
REMOVE_MODEL_ARG = ("str", "model", "_Model", "LaMa, MAT or inpaint model id; empty: the "
                    "registered LaMa or MAT, else OpenCV's Telea fill", "")
PREPROCESS_MODEL_ARG = ("str", "model", "_Model", "Depth or pose model id for depth or pose; "
                        "empty: the registered one", "")


def guide_arguments(control_kind: str, reference_required: bool) -> list[Argument]:
    # Layers as arguments: scripts pass GimpLayer objects, the dialog shows layer pickers.
    reference_blurb = "Layer whose look to take (IP-Adapter)" + (
        "" if reference_required else "; none: no image prompt")
    return [
        ("str", "control-kind", "_Control", f"{', '.join(CONTROL_KINDS)}; empty: no control",
         control_kind),
        ("layer", "control-layer", "Control _layer", "Layer holding the control image; none: "
         "made from the active layer (auto)", True),
        argument(CONTROL_SCALE, "control-scale"),
        argument(CONTROL_START, "control-start"),
        argument(CONTROL_END, "control-end"),
        ("str", "control-model", "Control mo_del", "ControlNet or T2I-Adapter id; empty: "
         "one whose id names the kind", ""),
        # none_ok even where required: a missing layer then gets our message, not GIMP's
        # bare calling error
        ("layer", "reference-layer", "_Reference layer", reference_blurb, True),
        argument(IMAGE_PROMPT_WEIGHT, "reference-weight"),
        ("str", "ip-adapter", "_IP-Adapter", "IP-Adapter id; empty: one that fits", ""),
    ]
SELECT_MODE_ARG = ("str", "mode", "_Select", "; ".join(
    f"{mode}: {text}" for mode, text in SELECT_MODES.items()), "selection")
SELECT_OUTPUT_ARG = ("str", "output", "_Result", "; ".join(
    f"{output}: {text}" for output, text in SELECT_OUTPUTS.items()), "selection")
SEGMENTER_ARG = ("str", "model", "_Model", "Segmenter id (SAM, SAM 2.1, SAM 3 for words); "
                 "empty: a registered one", "")


# name: (menu label, blurb, the task whose contract its arguments follow, arguments)
PROCEDURES: dict[str, tuple[str, str, TaskSchema, list[Argument]]] = {
    "plug-in-sfumato-inpaint": (
        "_Inpaint selection…", "Repaint the selection from a prompt, as a new layer",
        INPAINT, task_arguments(INPAINT) + [MODEL_ARG, ENDPOINT_ARG],
    ),
    "plug-in-sfumato-refine": (
        "_Refine…", "Rework the selection (or the whole layer) from a prompt, as a new layer",
        REFINE, task_arguments(REFINE) + [MODEL_ARG, ENDPOINT_ARG],
    ),
    "plug-in-sfumato-control": (
        "_Control…", "Inpaint or refine following a control image (ControlNet / T2I-Adapter) "
        "from another layer or made from this one, as a new layer",
        INPAINT, [OPERATION_ARG] + task_arguments(INPAINT) + [MODEL_ARG]
        + guide_arguments("canny", False) + [ENDPOINT_ARG],
    ),
    "plug-in-sfumato-image-prompt": (
        "Image _prompt…", "Inpaint or refine taking the look of another layer (IP-Adapter), "
        "as a new layer",
        INPAINT, [OPERATION_ARG] + task_arguments(INPAINT) + [MODEL_ARG]
        + guide_arguments("", True) + [ENDPOINT_ARG],
    ),
    "plug-in-sfumato-preprocess": (
        "Control _image from layer…", "A preprocessor's control image (edges, line art, "
        "depth...) of the active layer, as a new layer to paint over",
        PREPROCESS, task_arguments(PREPROCESS) + [PREPROCESS_MODEL_ARG, ENDPOINT_ARG],
    ),
    # issue 19: text to image, and outpainting
    "plug-in-sfumato-generate": (
        "_Generate…", "Paint a new picture from a prompt into the selection (or, with none, "
        "over the whole canvas), one new layer per variant; optionally following a control "
        "image and taking a reference layer's look", GENERATE,
        task_arguments(GENERATE) + [MODEL_ARG] + guide_arguments("", False) + [ENDPOINT_ARG],
    ),
    "plug-in-sfumato-expand": (
        "_Expand canvas…", "Grow the canvas by the given pixels per side and paint the new "
        "border from the picture's edge, as a new layer over the active one", EXPAND,
        task_arguments(EXPAND) + [MODEL_ARG, ENDPOINT_ARG],
    ),
    # issue 19: edit by instruction (InstructPix2Pix, FLUX.1 Kontext, Qwen-Image-Edit)
    "plug-in-sfumato-edit": (
        "_Edit by instruction…", "Change the selection (or, with none, the whole layer) as "
        "an instruction says (\"make it night\"), as a new layer exactly over it", EDIT,
        task_arguments(EDIT) + [MODEL_ARG, ENDPOINT_ARG],
    ),
    # issue 17: object removal (LaMa, MAT, or an inpaint model over their fill)
    "plug-in-sfumato-remove": (
        "_Remove object…", "Remove what is selected: the area is filled with what surrounds "
        "it, as a new layer", REMOVE,
        task_arguments(REMOVE) + [REMOVE_MODEL_ARG, ENDPOINT_ARG],
    ),
    # issue 18: selection by segmentation (SAM, SAM 2.1, SAM 3, VitMatte)
    "plug-in-sfumato-select": (
        "_Select object…", "Select the object in the rough selection, at the path's points, "
        "named in words, or the main subject: the selection is replaced, a channel added, or "
        "the object cut out as a new layer, in one undo step; the source layer stays as it "
        "is", SEGMENT,
        [SELECT_MODE_ARG] + task_arguments(SEGMENT) + [SELECT_OUTPUT_ARG, SEGMENTER_ARG,
                                                        ENDPOINT_ARG],
    ),
    # the recipe a result layer keeps, painted again with a new seed; no settings of its own
    # (the contract it names is only the procedure table's shape: the recipe's task rules)
    "plug-in-sfumato-regenerate": (
        "Re_generate", "Paint the selected sfumato layer again from the recipe it keeps: the "
        "same task, model and settings with a new seed, as a new layer under it", GENERATE,
        [ENDPOINT_ARG],
    ),
    "plug-in-sfumato-upscale": (
        "_Upscale layer…", "Upscale the active layer (the image grows with it), or only the "
        "selection into a new layer", UPSCALE,
        [UPSCALER_ARG] + task_arguments(UPSCALE) + [SELECTION_ONLY_ARG, ENDPOINT_ARG],
    ),
}
