"""`sfumato expand`: grow a picture's canvas and paint the new border (outpainting), as the
plug-ins' Expand does."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.recipe import recipes
from sfumato.bridge.schema import EXPAND, EXPAND_SIDES, ResultInfo
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
from sfumato.core.pixels.image_files import probe, read_rgba


def register(verbs: argparse._SubParsersAction) -> None:
    text = EXPAND.summary
    cmd = verbs.add_parser(
        "expand", help=text, description=text.capitalize() + " (outpainting, with an inpaint "
        "model). The picture itself is kept exactly; the fill blends into it over --feather "
        "pixels, its colours matched to the picture's.")
    cmd.add_argument("image", type=Path)
    cmd.add_argument("--model", help="inpaint model id from `sfumato models list`")
    cmd.add_argument("--aspect", metavar="W:H",
                     help="grow to this aspect ratio instead (e.g. 16:9), evenly on the two "
                     "sides that need it; the per-side amounts are then worked out")
    cmd.add_argument("-o", "--output", type=Path, required=True,
                     help="the expanded picture; -2, -3... for more variants")
    add_result_layer_flags(cmd, "also write just the RGBA fill layer (its offset on the "
                           "expanded canvas is printed)")
    add_task_flags(cmd, EXPAND)
    cmd.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from sfumato.core.pixels.arrays import raster_to_array

    settings = load_settings(args.endpoint)
    like = probe(args.image, settings.max_pixels)
    image = read_rgba(args.image, settings.max_pixels)
    if args.aspect is not None:
        for side, amount in zip(EXPAND_SIDES, sides_for_aspect(image.width, image.height,
                                                               args.aspect), strict=True):
            setattr(args, side, amount)
    params = task_values(args, EXPAND)
    left, top, right, bottom = (int(params.get(side) or 0) for side in EXPAND_SIDES)
    refuse_existing_variants(args.output, args.layer_out, int(params.get("variants") or 1),
                             args.overwrite)
    with connect_or_start(settings, "expand") as client:
        model = choose_model(client, "expand", args.model)
        version = client.hello().daemon_version
        outcome = run_job(client, "expand", params, [image], model, "expand")
    info = ResultInfo.from_wire(outcome.result.info)
    kept = recipes("expand", params, info, len(outcome.rasters), version)
    source = raster_to_array(image)
    grown = np.zeros((image.height + top + bottom, image.width + left + right, 4), source.dtype)
    grown[top:top + image.height, left:left + image.width] = source
    offset = (info.offset[0] + left, info.offset[1] + top)  # on the expanded canvas
    write_variants(grown, outcome.rasters, offset, image.layout, kept, args.output,
                   args.layer_out, like, args.overwrite)
    print(json.dumps({"size": [grown.shape[1], grown.shape[0]], "offset": list(offset),
                      "seed": info.seed, "seeds": list(info.seeds), "model": info.model,
                      "warnings": list(info.warnings)}))
    return 0


def sides_for_aspect(width: int, height: int, aspect: str) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) that grow a width x height picture to the aspect ratio
    "W:H", split evenly (the odd pixel on the right or bottom); nothing when it has it."""
    wide, sep, high = aspect.partition(":")
    try:
        ratio = float(wide) / float(high)
    except (ValueError, ZeroDivisionError):
        ratio = 0.0
    if not sep or not 0.01 <= ratio <= 100:
        raise SfumatoError(ErrorCode.BAD_PARAMS, f"--aspect {aspect!r}: write it as W:H, "
                           "e.g. 16:9 or 1:1")
    if width / height < ratio:  # too narrow: add columns
        extra = round(height * ratio) - width
        return extra // 2, 0, extra - extra // 2, 0
    extra = round(width / ratio) - height
    return 0, extra // 2, 0, extra - extra // 2
