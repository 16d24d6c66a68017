"""`sfumato segment`: a selection mask from clicks, a box or words (no prompt: the main
subject), written as a grey image the input's size (white = selected)."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.raster import Raster
from sfumato.bridge.schema import SEGMENT, ResultInfo
from sfumato.core.cli.task_flags import add_task_flags, task_values
from sfumato.core.errors import SfumatoError

_NUMBER = r"-?\d+(?:\.\d+)?"


def register(verbs: argparse._SubParsersAction) -> None:
    text = SEGMENT.summary
    cmd = verbs.add_parser(SEGMENT.name, help=text, description=text.capitalize() + ". "
                           "Coordinates are the image's pixels from its top-left corner.")
    cmd.add_argument("image", type=Path)
    add_prompt_flags(cmd)
    cmd.add_argument("--model", help="segmenter id from `sfumato models list` (default: a "
                     "registered one; SAM 3 for --text)")
    cmd.add_argument("-o", "--output", type=Path, required=True,
                     help="the mask: grey, the image's size, white = selected")
    cmd.add_argument("--overwrite", action="store_true",
                     help="replace an output file that exists (default: refuse)")
    add_task_flags(cmd, SEGMENT)
    cmd.set_defaults(run=run)


def add_prompt_flags(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--point", action="append", default=[], metavar="X,Y[,0|1]",
                     help="a click on the object (repeatable); ,0 marks a point NOT on it")
    cmd.add_argument("--box", metavar="X,Y,W,H", help="a box around the object")
    cmd.add_argument("--mask", type=Path, help="a rough selection (white): the object in it is "
                     "selected, and the model sees only its box plus --context")


def prompt_params(args: argparse.Namespace) -> dict[str, Any]:
    """--point and --box as the request's `points` and `box` lists."""
    params: dict[str, Any] = {}
    points = []
    for text in args.point:
        if not re.fullmatch(rf"{_NUMBER},{_NUMBER}(,[01])?", text.replace(" ", "")):
            raise SfumatoError(ErrorCode.BAD_PARAMS, f"--point {text!r}: write X,Y or X,Y,1 "
                               "(on the object) or X,Y,0 (not on it), in the image's pixels")
        values = [float(v) for v in text.replace(" ", "").split(",")]
        points.append(values[:2] + ([int(values[2])] if len(values) == 3 else []))
    if points:
        params["points"] = points
    if args.box is not None:
        parts = args.box.replace(" ", "").split(",")
        if len(parts) != 4 or not all(re.fullmatch(_NUMBER, p) for p in parts) or \
                float(parts[2]) <= 0 or float(parts[3]) <= 0:
            raise SfumatoError(ErrorCode.BAD_PARAMS, f"--box {args.box!r}: write X,Y,W,H (the "
                               "top-left corner, then a positive width and height)")
        params["box"] = [float(p) for p in parts]
    return params


def segment_image(args: argparse.Namespace) -> tuple[Raster, Any, ResultInfo]:
    """Run `segment` on args.image; (the image, the full-size uint8 mask, the result info)."""
    import numpy as np
    from sfumato.core.cli.diffusion_cmd import check_mask
    from sfumato.core.cli.job_runner import run_job
    from sfumato.core.cli.launcher import connect_or_start
    from sfumato.core.config import load_settings
    from sfumato.core.pixels.arrays import raster_to_array
    from sfumato.core.pixels.image_files import probe, read_mask, read_rgba

    settings = load_settings(args.endpoint)
    like = probe(args.image, settings.max_pixels)
    params = {**task_values(args, SEGMENT), **prompt_params(args)}
    image = read_rgba(args.image, settings.max_pixels)
    rasters = [image]
    if args.mask is not None:
        check_mask(probe(args.mask, settings.max_pixels), like)
        rasters.append(read_mask(args.mask, settings.max_pixels))
    with connect_or_start(settings, SEGMENT.name) as client:
        outcome = run_job(client, SEGMENT.name, params, rasters, args.model, SEGMENT.name)
    info = ResultInfo.from_wire(outcome.result.info)
    part = raster_to_array(outcome.rasters[0])[..., 0]
    mask = np.zeros((image.height, image.width), np.uint8)
    x, y = info.offset
    mask[y:y + part.shape[0], x:x + part.shape[1]] = part
    return image, mask, info


def words_mask(client: Any, image: Raster, words: str) -> Raster:
    """The gray8 mask, `image`'s size, of what `words` name (segment with a SAM 3), for
    another task's --mask-from; refused when nothing matches."""
    import numpy as np
    from sfumato.bridge.raster import Layout
    from sfumato.core.cli.job_runner import run_job
    from sfumato.core.pixels.arrays import array_to_raster, raster_to_array

    outcome = run_job(client, SEGMENT.name, {"text": words}, [image], None, "mask-from")
    info = ResultInfo.from_wire(outcome.result.info)
    part = raster_to_array(outcome.rasters[0])[..., 0]
    mask = np.zeros((image.height, image.width), np.uint8)
    x, y = info.offset
    mask[y:y + part.shape[0], x:x + part.shape[1]] = part
    if not mask.any():
        raise SfumatoError(ErrorCode.EMPTY_SELECTION, f"nothing that {words!r} names was "
                           "found; try other words, or give --mask")
    return array_to_raster(mask, Layout.GRAY8)


def run(args: argparse.Namespace) -> int:
    from sfumato.bridge.raster import Layout
    from sfumato.core.cli.output_paths import refuse_existing
    from sfumato.core.pixels.arrays import array_to_raster
    from sfumato.core.pixels.image_files import write_image

    refuse_existing(args.output, args.overwrite)
    _, mask, info = segment_image(args)
    write_image(args.output, array_to_raster(mask, Layout.GRAY8), overwrite=args.overwrite)
    print(f"wrote {args.output}")
    print(json.dumps({"selected_pixels": int((mask > 127).sum()), "model": info.model,
                      "warnings": list(info.warnings)}))
    return 0
