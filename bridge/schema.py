"""The task contract, written once: every task's parameters (wire name, type, default, range,
help), the layouts it reads, the model kinds it runs, and the typed info of its result. The
daemon checks requests against it (`TaskSchema.read`); the CLI flags, the GIMP procedure
arguments and the Krita docker's fields are made from it. Adding a parameter to a task is one
edit here.

Standard library only: it loads inside GIMP's and Krita's Python.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import SfumatoError
from .geometry import task_reach
from .protocol import ErrorCode
from .raster import Layout

SEED_LIMIT = 2**32  # seeds any host can show and type back
MAX_EDGE_PX = 1024  # grow, feather and context
MAX_GUIDE_RASTERS = 8  # up to 4 control images and 4 image prompts
MAX_GUIDES = 4  # of each kind

Scalar = int | float | str | bool


@dataclass(frozen=True)
class Param:
    """One request parameter.

    `default` is what the daemon assumes when a request leaves the parameter out (or sends
    null). None means "absent has a meaning": the daemon decides (a random seed, the model
    family's guidance) or, with `required`, the request is refused. Front ends that must
    always show some value (a GIMP field, a docker spin box) show `absent`, a placeholder
    that means "leave it out" (seed -1, scale 0), or start a required one at `shown`."""

    name: str  # the wire name; CLI flags and GIMP arguments use it with '-' for '_'
    kind: type  # int, float, str or bool: the JSON type the wire must carry
    default: Scalar | None
    help: str
    low: float | None = None
    high: float | None = None
    required: bool = False
    absent: Scalar | None = None
    absent_label: str = ""  # what a form shows at the `absent` value ("random")
    shown: Scalar | None = None
    label: str = ""  # the GIMP / Krita label, with its mnemonic
    choices: tuple[str, ...] = ()  # the only values a str parameter may take
    model_kinds: frozenset[str] = frozenset()  # a str naming a registry model of these kinds

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def gimp_name(self) -> str:
        return self.name.replace("_", "-")

    @property
    def initial(self) -> Scalar | None:
        """The value a form starts at."""
        for value in (self.default, self.shown, self.absent):
            if value is not None:
                return value
        return None

    def means_absent(self, value: Any) -> bool:
        """Whether a form's value stands for "leave it out" (None, or the placeholder)."""
        return value is None or (self.absent is not None and value == self.absent
                                 and not isinstance(value, bool))

    def check(self, value: Any) -> Scalar:
        """`value` as this parameter's type, or BAD_PARAMS saying what is wanted. Strict JSON
        types: a whole number is not text, a flag is not a number."""
        if self.kind is bool:
            if not isinstance(value, bool):
                raise _bad(f"{self.name} must be true or false, got {value!r}")
            return value
        if self.kind is str:
            if not isinstance(value, str):
                raise _bad(f"{self.name} must be text, got {value!r}")
            if self.choices:
                if value.lower() not in self.choices:
                    raise _bad(f"{self.name} must be one of {', '.join(self.choices)}, "
                               f"got {value!r}")
                return value.lower()
            return value
        what = "a whole number" if self.kind is int else "a number"
        wrong_type = isinstance(value, bool) or not isinstance(
            value, int if self.kind is int else int | float)
        if wrong_type or not math.isfinite(value) or (
                self.low is not None and value < self.low) or (
                self.high is not None and value > self.high):
            raise _bad(f"{self.name} must be {what}{self._range()}, got {value!r}")
        return int(value) if self.kind is int else float(value)

    def _range(self) -> str:
        return f" from {self.bounds}" if self.bounds else ""

    @property
    def bounds(self) -> str:
        """"LOW to HIGH" as people write them (no exponents), or "" when unbounded."""
        if self.low is None or self.high is None:
            return ""
        return f"{self._show(self.low)} to {self._show(self.high)}"

    def _show(self, value: float) -> str:
        return str(int(value)) if self.kind is int else f"{value:g}"


@dataclass(frozen=True)
class TaskSchema:
    name: str
    summary: str
    params: tuple[Param, ...]
    layouts: tuple[Layout, ...]  # what the layer (rasters[0]) may be
    model_kinds: frozenset[str]
    inputs: tuple[str, ...]  # what each attached raster is, in order ("mask?": optional)
    guided: bool = False  # takes controls and image prompts (and their rasters)
    structured: tuple[str, ...] = ()  # list-valued params the task itself checks

    def param(self, name: str) -> Param:
        for param in self.params:
            if param.name == name:
                return param
        raise KeyError(f"{self.name} has no parameter {name!r}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def defaults(self) -> dict[str, Scalar | None]:
        """What the daemon assumes for each parameter a request leaves out (None: see Param)."""
        return {p.name: p.default for p in self.params}

    def read(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Every parameter's value for a request: checked, with the defaults filled in.
        Unknown names are refused (a typo must not silently fall back to a default);
        list-valued ones (`structured`, controls, image prompts) pass through for the task
        to check."""
        allowed = set(self.names) | set(self.structured)
        if self.guided:
            allowed |= {"controls", "image_prompts"}
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise _bad(f"{self.name} has no parameter {', '.join(map(repr, unknown))}; it "
                       f"takes {', '.join(sorted(allowed))}")
        values: dict[str, Any] = {}
        for param in self.params:
            value = params.get(param.name)
            if param.means_absent(value):
                if param.required:
                    raise _bad(f"{param.name} is required: {param.help}")
                values[param.name] = param.default
            else:
                values[param.name] = param.check(value)
        for name in allowed - set(self.names):
            values[name] = params.get(name)
        return values

    def reach(self, params: Mapping[str, Any]) -> int:
        """How far (layer pixels, each side) this task reads around a selection's bounding
        box: the grown and feathered mask, then the model's context. The bridge crops this
        much; the daemon plans within what it was sent."""
        values = {**self.defaults(), **{k: v for k, v in params.items() if v is not None}}
        return task_reach(*(int(values.get(k) or 0) for k in ("grow", "feather", "context")))


def _bad(message: str) -> SfumatoError:
    return SfumatoError(ErrorCode.BAD_PARAMS, message)


# --- controls and image prompts ------------------------------------------------------------

# What the daemon's preprocessors make ("auto"): all work without weights but depth and pose,
# which need a depth or pose (ViTPose) model in the daemon's model store.
CONTROL_KINDS = ("canny", "lineart", "scribble", "softedge", "depth", "pose", "tile")
CONTROL_SCALE = Param("scale", float, 0.6, "how strongly to follow the control image (above 1 "
                      "overpowers the prompt)", 0.0, 2.0, label="Control s_cale")
CONTROL_START = Param("start", float, 0.0, "fraction of the steps where the control starts",
                      0.0, 1.0, label="Control st_art")
CONTROL_END = Param("end", float, 1.0, "fraction of the steps where the control ends", 0.0,
                    1.0, label="Control en_d")
IMAGE_PROMPT_WEIGHT = Param("weight", float, 0.6, "how much of the reference's look to take",
                            0.0, 2.0, label="Reference _weight")
CONTROL_MODEL_KINDS = frozenset({"controlnet", "t2i-adapter"})
IMAGE_PROMPT_MODEL_KINDS = frozenset({"ip-adapter"})

# --- the tasks -------------------------------------------------------------------------------

DIFFUSION_LAYOUTS = (Layout.RGBA8, Layout.BGRA8, Layout.RGBA16)
UPSCALE_LAYOUTS = (Layout.RGBA8, Layout.BGRA8, Layout.RGBA16, Layout.RGBAF32, Layout.GRAY8)

INPAINT_KINDS = frozenset({"sdxl-inpaint", "sdxl", "sd15-inpaint", "flux-fill"})
REFINE_KINDS = frozenset({"sdxl", "sdxl-inpaint", "sd15", "sd15-inpaint", "flux", "flux-fill"})
DIFFUSION_KINDS = INPAINT_KINDS | REFINE_KINDS
UPSCALER_KINDS = frozenset({"upscaler"})
SUPIR_KINDS = frozenset({"supir"})  # diffusion super-resolution over an SDXL base (issue 20)
SUPIR_BASE_KINDS = frozenset({"sdxl"})
REFINE_UPSCALE_KINDS = frozenset({"sdxl", "sdxl-inpaint", "sd15", "sd15-inpaint"})
PREPROCESSOR_KINDS = frozenset({"depth-estimator", "pose-estimator"})


def _diffusion_params(strength: float | None, grow: int, context: int) -> tuple[Param, ...]:
    return (
        Param("prompt", str, "", "what to paint", label="_Prompt"),
        Param("negative_prompt", str, "", "what to avoid", label="_Negative prompt"),
        Param("strength", float, strength, "how much to change: 0 keeps the input, 1 paints "
              "it anew", 0.0, 1.0, required=strength is None, shown=0.4, label="S_trength"),
        Param("steps", int, 30, "denoising steps", 1, 150, label="_Steps"),
        Param("guidance", float, None, "how closely to follow the prompt (CFG scale); 0 or "
              "absent: the model family's usual", 0.0, 100.0, absent=0.0,
              absent_label="model's usual", label="_Guidance"),
        Param("seed", int, None, "random seed; -1 or absent: a new one (reported either way)",
              0, SEED_LIMIT - 1, absent=-1, absent_label="random", label="S_eed"),
        Param("variants", int, 1, "how many results, one layer each", 1, 8, label="_Variants"),
        Param("grow", int, grow, "grow the selection by this many pixels", 0, MAX_EDGE_PX,
              label="_Grow"),
        Param("feather", int, 16, "soften the result's edge over this many pixels", 0,
              MAX_EDGE_PX, label="_Feather"),
        Param("context", int, context, "pixels around the selection the model sees", 0,
              MAX_EDGE_PX, label="_Context"),
        Param("resolution", int, None, "side of the square the model works at; 0 or absent: "
              "the model's native size", 64, 4096, absent=0, absent_label="native",
              label="_Resolution"),
    )


INPAINT = TaskSchema(
    "inpaint", "fill the selection (the white part of a mask) from a prompt",
    _diffusion_params(strength=1.0, grow=4, context=64), DIFFUSION_LAYOUTS, INPAINT_KINDS,
    ("image", "mask"), guided=True)
REFINE = TaskSchema(
    "refine", "rework an image (or its selected part) with a strength dial",
    _diffusion_params(strength=None, grow=0, context=32), DIFFUSION_LAYOUTS, REFINE_KINDS,
    ("image", "mask?"), guided=True)
UPSCALE = TaskSchema(
    "upscale", "enlarge an image with a super-resolution model",
    (
        Param("scale", float, None, "scale factor; 0 or absent: the model's own", 0.01, 16.0,
              absent=0.0, absent_label="model's own", label="_Scale"),
        Param("tile", int, None, "tile size in input pixels; 0 or absent: from free memory",
              1, 8192, absent=0, absent_label="auto", label="_Tile"),
        Param("batch", int, None, "tiles per forward pass; 0 or absent: the daemon's "
              "upscale_batch", 1, 64, absent=0, absent_label="auto", label="_Batch"),
        # diffusion super-resolution: the upscale reworked in tiles by an SD 1.5 / SDXL model
        Param("refine", str, "", "an SD 1.5 or SDXL model id: after the upscale, rework it "
              "in overlapping tiles to add real detail; empty: no refine", label="_Refine with",
              model_kinds=REFINE_UPSCALE_KINDS),
        Param("refine_strength", float, 0.3, "how much the refine may change the upscale: "
              "0 keeps it, above 0.5 invents", 0.0, 1.0, label="Refine s_trength"),
        Param("refine_prompt", str, "", "what the picture shows, for the refine or a SUPIR "
              "model",
              label="Refine _prompt"),
        Param("refine_steps", int, 20, "denoising steps of the refine (strength x steps run) "
              "or of a SUPIR model",
              1, 150, label="Refine st_eps"),
        Param("refine_tile", int, None, "refine tile side in output pixels; 0 or absent: the "
              "model's native size", 64, 4096, absent=0, absent_label="native",
              label="Refine t_ile"),
        Param("refine_seed", int, None, "random seed of the refine or a SUPIR model; -1 or "
              "absent: a new one",
              0, SEED_LIMIT - 1, absent=-1, absent_label="random", label="Refine s_eed"),
    ),
    UPSCALE_LAYOUTS, UPSCALER_KINDS | SUPIR_KINDS, ("image",), structured=("region",))
PREPROCESS = TaskSchema(
    "preprocess", "a control image (edges, line art, depth, pose...) made from a picture",
    (Param("kind", str, None, "what to make", required=True, shown="canny", label="_Kind",
           choices=CONTROL_KINDS),),
    DIFFUSION_LAYOUTS, PREPROCESSOR_KINDS, ("image",))

# --- generate and expand (issue 19) ----------------------------------------------------------

GENERATE_KINDS = frozenset({"sdxl", "sd15", "flux"})  # text-to-image base models
EXPAND_KINDS = INPAINT_KINDS  # outpainting is inpainting a new border
MAX_EXPAND_PX = 4096  # per side


def _without(params: tuple[Param, ...], *names: str) -> tuple[Param, ...]:
    return tuple(p for p in params if p.name not in names)


def _side(name: str, label: str) -> Param:
    return Param(name, int, 0, f"pixels to add on the {name}", 0, MAX_EXPAND_PX, label=label)


GENERATE = TaskSchema(
    "generate", "paint a new picture from a prompt, into the selection or the whole canvas",
    _without(_diffusion_params(strength=1.0, grow=0, context=0), "strength", "context"),
    DIFFUSION_LAYOUTS, GENERATE_KINDS, ("image", "mask?"), guided=True)
EXPAND = TaskSchema(
    "expand", "grow the canvas and paint the new border to continue the picture",
    (_side("left", "_Left"), _side("top", "_Top"), _side("right", "_Right"),
     _side("bottom", "_Bottom"))
    + _without(_diffusion_params(strength=1.0, grow=0, context=128), "strength", "grow",
               "feather", "context")
    + (Param("feather", int, 32, "blend the seam over this many pixels of the image", 0,
             MAX_EDGE_PX, label="_Feather"),
       Param("context", int, 128, "pixels of the image beside each new border the model sees",
             0, MAX_EDGE_PX, label="_Context")),
    DIFFUSION_LAYOUTS, EXPAND_KINDS, ("image",))
EXPAND_SIDES = ("left", "top", "right", "bottom")

TASKS: dict[str, TaskSchema] = {
    schema.name: schema for schema in (INPAINT, REFINE, UPSCALE, PREPROCESS, GENERATE, EXPAND)}


# --- remove (issue 17) -----------------------------------------------------------------------

FILL_KINDS = frozenset({"lama", "mat"})  # spandrel's masked-image models: one pass, no prompt
REMOVE_KINDS = FILL_KINDS | INPAINT_KINDS
REMOVE_PROMPT = "background"  # what a diffusion model paints over the fill when no prompt is set
REMOVE = TaskSchema(
    "remove", "remove what is selected: the area is filled with what surrounds it",
    (
        Param("refine_strength", float, 0.5, "diffusion models only: how much the model "
              "repaints over the LaMa, MAT or Telea fill it starts from; 0 keeps the fill",
              0.0, 1.0, label="Refine _strength"),
        Param("fill_model", str, "", "diffusion models only: the LaMa or MAT model id whose "
              "fill it starts from; empty: a registered one, else OpenCV's Telea fill",
              label="_Fill model"),
        Param("prompt", str, "", "diffusion models only: what the background is; empty: "
              f"\"{REMOVE_PROMPT}\"", label="_Prompt"),
        Param("steps", int, 20, "diffusion models only: denoising steps", 1, 150,
              label="_Steps"),
        Param("seed", int, None, "diffusion models only: random seed; -1 or absent: a new one",
              0, SEED_LIMIT - 1, absent=-1, absent_label="random", label="S_eed"),
        Param("grow", int, 8, "grow the selection by this many pixels (take in edges and "
              "shadows)", 0, MAX_EDGE_PX, label="_Grow"),
        Param("feather", int, 8, "soften the result's edge over this many pixels", 0,
              MAX_EDGE_PX, label="_Feather"),
        Param("context", int, 128, "pixels around the selection the model sees", 0,
              MAX_EDGE_PX, label="_Context"),
        Param("resolution", int, None, "side of the square the model works at; 0 or absent: "
              "the model's own (LaMa and MAT 512, diffusion models their native size)", 64,
              4096, absent=0, absent_label="native", label="_Resolution"),
    ),
    DIFFUSION_LAYOUTS, REMOVE_KINDS, ("image", "mask"))
TASKS[REMOVE.name] = REMOVE

# --- edit by instruction (issue 19) ---------------------------------------------------------

# instruction-following edit models: InstructPix2Pix (SD 1.5, SDXL), FLUX.1 Kontext,
# Qwen-Image-Edit (and its Plus), FLUX.2 Klein (the picture as its reference)
EDIT_KINDS = frozenset({"instruct-pix2pix", "sdxl-instruct-pix2pix", "flux-kontext",
                        "qwen-image-edit", "qwen-image-edit-plus", "flux2-klein"})
EDIT = TaskSchema(
    "edit", "change a picture (or its selected part) as an instruction says: \"make it "
    "night\", \"remove the hat\"",
    (Param("instruction", str, "", "what to change, in words (\"make it night\")",
           label="_Instruction"),)
    + _without(_diffusion_params(strength=1.0, grow=0, context=64), "prompt", "strength")
    + (Param("image_guidance", float, None, "InstructPix2Pix only: how closely to keep the "
             "picture (image guidance scale); 0 or absent: 1.5", 0.0, 20.0, absent=0.0,
             absent_label="model's usual", label="_Image guidance"),),
    DIFFUSION_LAYOUTS, EDIT_KINDS, ("image", "mask?"))
TASKS[EDIT.name] = EDIT


# --- segment (issue 18) ----------------------------------------------------------------------

SEGMENTER_KINDS = frozenset({"segmenter"})  # SAM, SAM 2.1, SAM 3 (transformers)
MATTING_KINDS = frozenset({"matting"})  # VitMatte: soft edges from a mask's trimap
WORDS_FAMILY = "SAM 3"  # the only segmenter that takes words
SEGMENT = TaskSchema(
    "segment", "a mask of the object at points, in a box or named in words (no prompt: the "
               "main subject)",
    (
        Param("text", str, "", f"words naming what to select (\"the cat\"); {WORDS_FAMILY} "
              "segmenters only", label="_Words"),
        Param("soft", bool, False, "refine the edge into a soft mask (hair, fur) with a "
              "matting model", label="S_oft edges"),
        Param("matting", str, "", "the matting model id for soft edges; empty: a registered "
              "one", label="_Matting model", model_kinds=MATTING_KINDS),
        Param("context", int, 64, "pixels around the rough selection the model sees", 0,
              MAX_EDGE_PX, label="_Context"),
    ),
    DIFFUSION_LAYOUTS, SEGMENTER_KINDS, ("image", "mask?"), structured=("points", "box"))
TASKS[SEGMENT.name] = SEGMENT

# The hosts' Select object (bridge/select_object.py): what the prompt is, and where the mask
# goes. GIMP's arguments and Krita's lists are made from these.
SELECT_MODES = {
    "selection": "the object in the rough selection",
    "points": "at the points (GIMP: the active path's anchors, a second path's are points off "
              "it; Krita: a vector layer's path anchors and shape centres, a second layer's are "
              "points off it)",
    "words": f"the objects the words name ({WORDS_FAMILY})",
    "subject": "the main subject of the layer",
}
SELECT_OUTPUTS = {
    "selection": "replace the selection (one undo step)",
    "channel": "add it as a channel (Krita: a selection mask); the selection stays",
    "layer": "cut out: a new layer of the object, the background transparent; the source "
             "layer stays as it is",
}


def task_schema(name: str) -> TaskSchema:
    schema = TASKS.get(name)
    if schema is None:
        raise SfumatoError(ErrorCode.UNKNOWN_TASK, f"unknown task {name!r}; this daemon runs "
                           f"{', '.join(sorted(TASKS))}")
    return schema


# --- what comes back ---------------------------------------------------------------------


@dataclass(frozen=True)
class ResultInfo:
    """What a result says about its rasters. `offset` is where the first raster's top-left
    lies in the raster that was sent (the sender knows where that came from)."""

    offset: tuple[int, int] = (0, 0)
    names: tuple[str, ...] = ()  # one layer name per raster
    seeds: tuple[int, ...] = ()  # one per raster, for the diffusion tasks
    warnings: tuple[str, ...] = ()  # what the artist should know (a prompt cut short ...)
    scale: float | None = None  # upscale: the factor used
    model: str | None = None  # the model id that ran
    work_ratio: float | None = None  # upscale: pixels the model ran / pixels asked for
    tiles: int | None = None  # upscale: windows the model ran over

    @property
    def seed(self) -> int | None:
        return self.seeds[0] if self.seeds else None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"offset": list(self.offset), "names": list(self.names),
                                "warnings": list(self.warnings)}
        if self.names:
            wire["name"] = self.names[0]
        if self.seeds:
            wire["seeds"], wire["seed"] = list(self.seeds), self.seeds[0]
        for key in ("scale", "model", "work_ratio", "tiles"):
            if getattr(self, key) is not None:
                wire[key] = getattr(self, key)
        return wire

    @classmethod
    def from_wire(cls, info: Mapping[str, Any]) -> ResultInfo:
        """Tolerant: a field of the wrong type is taken as absent (an older or newer daemon
        must still give the artist a layer)."""
        offset: Any = info.get("offset")
        names = _strings(info.get("names")) or _strings([info.get("name")])
        seeds = _ints(info.get("seeds")) or _ints([info.get("seed")])
        return cls(
            offset=(int(offset[0]), int(offset[1])) if _int_pair(offset) else (0, 0),
            names=names, seeds=seeds, warnings=_strings(info.get("warnings")),
            scale=_number(info.get("scale")),
            model=info["model"] if isinstance(info.get("model"), str) else None,
            work_ratio=_number(info.get("work_ratio")),
            tiles=next(iter(_ints([info.get("tiles")])), None),
        )


def _int_pair(value: Any) -> bool:
    return isinstance(value, list | tuple) and len(value) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value)


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        return ()
    return tuple(v for v in value if isinstance(v, str) and v)


def _ints(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list | tuple):
        return ()
    return tuple(v for v in value if isinstance(v, int) and not isinstance(v, bool))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return float(value)
