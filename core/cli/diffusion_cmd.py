"""`sfumato inpaint` and `sfumato refine`: the plug-ins' diffusion actions, from the shell."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sfumato.bridge.guides import DEFAULT_SCALE, DEFAULT_WEIGHT, Control, ImagePrompt
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.raster import Raster
from sfumato.bridge.recipe import recipes
from sfumato.bridge.schema import INPAINT, REFINE, TASKS, ResultInfo
from sfumato.core.cli.job_runner import run_job
from sfumato.core.cli.launcher import connect_or_start
from sfumato.core.cli.model_choice import choose_model
from sfumato.core.cli.task_flags import add_task_flags, task_values
from sfumato.core.cli.variant_outputs import (
    add_result_layer_flags,
    refuse_existing_variants,
    write_variants,
)
from sfumato.core.config import load_settings
from sfumato.core.errors import SfumatoError
from sfumato.core.pixels.image_files import ImageInfo, probe, read_mask, read_rgba


def register(verbs: argparse._SubParsersAction) -> None:
    for name, text in ((INPAINT.name, INPAINT.summary), (REFINE.name, REFINE.summary)):
        cmd = verbs.add_parser(name, help=text, description=text.capitalize() + ". Mask: white "
                               "= change, black = keep, grey = partly. Pixels outside the "
                               "feathered mask stay exactly as they were.")
        cmd.add_argument("image", type=Path)
        cmd.add_argument("--mask", type=Path)
        cmd.add_argument("--mask-from", metavar="WORDS",
                         help="the mask from words instead of --mask: what they name (\"the "
                         "cup\"), selected by a SAM 3 segmenter (see `sfumato segment`)")
        cmd.add_argument("--model", help="model id from `sfumato models list`")
        cmd.add_argument("--control", action="append", default=[], metavar="KIND:IMAGE[:SCALE]",
                         help="follow a control image (repeatable): KIND is canny, lineart, "
                         "scribble, softedge, depth, pose or tile (KIND@MODEL names the "
                         "ControlNet / T2I-Adapter id); IMAGE a file the input's size, or "
                         "auto to make it from the input; SCALE 0-2, default 0.6")
        cmd.add_argument("--image-prompt", action="append", default=[],
                         metavar="IMAGE[:WEIGHT]",
                         help="take the look of a reference picture (IP-Adapter, repeatable); "
                         "WEIGHT 0-2, default 0.6")
        cmd.add_argument("--ip-adapter", metavar="MODEL",
                         help="IP-Adapter id for --image-prompt (default: one that fits)")
        cmd.add_argument("-o", "--output", type=Path, required=True,
                         help="the full composited image (it keeps the recipe, see "
                         "`sfumato inspect`); -2, -3... for more variants")
        add_result_layer_flags(cmd)
        add_task_flags(cmd, TASKS[name])
        cmd.set_defaults(run=run, task=name)


def run(args: argparse.Namespace) -> int:
    from sfumato.core.pixels.arrays import raster_to_array

    settings = load_settings(args.endpoint)
    like = probe(args.image, settings.max_pixels)
    if args.mask is not None:
        check_mask(probe(args.mask, settings.max_pixels), like)
    image = read_rgba(args.image, settings.max_pixels)
    rasters = [image]
    if args.mask is not None:
        rasters.append(read_mask(args.mask, settings.max_pixels))
    params = task_values(args, TASKS[args.task])
    words = (getattr(args, "mask_from", None) or "").strip()
    _check_mask_choice(args.task, args.mask, words)
    if words:
        rasters.append(image)  # holds the mask's place (guides come after it) until made
    params.update(guide_params(args.control, args.image_prompt, args.ip_adapter, rasters))
    refuse_existing_variants(args.output, args.layer_out, int(params.get("variants") or 1),
                             args.overwrite)
    with connect_or_start(settings, args.task) as client:
        if words:
            from sfumato.core.cli.segment_cmd import words_mask

            rasters[1] = words_mask(client, image, words)
        model = choose_model(client, args.task, args.model)
        version = client.hello().daemon_version
        outcome = run_job(client, args.task, params, rasters, model, args.task)
    info = ResultInfo.from_wire(outcome.result.info)
    offset = info.offset
    kept = recipes(args.task, params, info, len(outcome.rasters), version)
    write_variants(raster_to_array(image), outcome.rasters, offset, image.layout, kept,
                   args.output, args.layer_out, like, args.overwrite)
    print(json.dumps({"offset": list(offset), "seed": info.seed, "seeds": list(info.seeds),
                      "warnings": list(info.warnings)}))
    return 0


def _check_mask_choice(task: str, mask: Path | None, words: str) -> None:
    if mask is not None and words:
        raise SfumatoError(ErrorCode.BAD_PARAMS, "give --mask or --mask-from, not both")
    if task == "inpaint" and mask is None and not words:
        raise SfumatoError(ErrorCode.BAD_PARAMS, "inpaint needs a mask: --mask FILE (white = "
                           "change), or --mask-from WORDS to select what the words name")


def check_mask(mask: ImageInfo, image: ImageInfo) -> None:
    if (mask.width, mask.height) != (image.width, image.height):
        raise SfumatoError(
            ErrorCode.BAD_PARAMS,
            f"the mask is {mask.width}×{mask.height} but the image is "
            f"{image.width}×{image.height}: make the mask {mask.path} the image's size "
            "(white = change, black = keep)")


def guide_params(controls: list[str], image_prompts: list[str], ip_adapter: str | None,
                 rasters: list[Raster]) -> dict[str, Any]:
    """The request's controls and image prompts from the command line; their image files are
    read and appended to `rasters`."""
    params: dict[str, Any] = {}
    wired = []
    for spec in controls:
        head, _, rest = spec.partition(":")
        image, scale = _split_number(rest, spec, "--control KIND:IMAGE[:SCALE]")
        kind, _, model = head.partition("@")
        control = Control(kind, scale=DEFAULT_SCALE if scale is None else scale,
                          model=model or None)
        if image == AUTO:
            wired.append(control.wire(AUTO))
        else:
            rasters.append(read_rgba(Path(image)))
            wired.append(control.wire(len(rasters) - 1))
    if wired:
        params["controls"] = wired
    prompts = []
    for spec in image_prompts:
        image, weight = _split_number(spec, spec, "--image-prompt IMAGE[:WEIGHT]")
        rasters.append(read_rgba(Path(image)))
        prompt = ImagePrompt(image, DEFAULT_WEIGHT if weight is None else weight,
                             ip_adapter or None)
        prompts.append(prompt.wire(len(rasters) - 1))
    if prompts:
        params["image_prompts"] = prompts
    return params


AUTO = "auto"  # a control image the daemon makes from the input


def _split_number(text: str, spec: str, usage: str) -> tuple[str, float | None]:
    """"IMAGE:NUMBER" -> (IMAGE, NUMBER); a path may itself hold colons."""
    head, _, tail = text.rpartition(":")
    try:
        number = float(tail) if head else None
    except ValueError:
        number = None
    image = head if number is not None else text
    if not image or image.startswith(":"):
        raise SfumatoError(ErrorCode.BAD_PARAMS, f"{spec!r}: write it as {usage}")
    return image, number
