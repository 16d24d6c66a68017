"""`sfumato generate`: a new picture from a prompt, on a blank canvas or over a picture (into
the white part of a mask), as the plug-ins' Generate does."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.raster import Layout, Raster
from sfumato.bridge.recipe import recipes
from sfumato.bridge.schema import GENERATE, ResultInfo
from sfumato.core.cli.diffusion_cmd import guide_params
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

MAX_SIDE = 16384


def register(verbs: argparse._SubParsersAction) -> None:
    text = GENERATE.summary
    cmd = verbs.add_parser(
        "generate", help=text, description=text.capitalize() + ". The model works at its "
        "native resolution with the canvas's (or the mask's) aspect ratio; the result is "
        "scaled to fit. Mask: white = paint, black = keep.")
    cmd.add_argument("image", type=Path, nargs="?",
                     help="paint over this picture (its size; the source of auto controls); "
                     "absent: a blank canvas of --size")
    cmd.add_argument("--size", default="1024x1024", metavar="WxH",
                     help="the blank canvas's size when no IMAGE is given (default 1024x1024)")
    cmd.add_argument("--mask", type=Path, help="paint only the white part (the IMAGE's or "
                     "--size's size)")
    cmd.add_argument("--model", help="model id from `sfumato models list` (SDXL, SD 1.5, FLUX)")
    cmd.add_argument("--control", action="append", default=[], metavar="KIND:IMAGE[:SCALE]",
                     help="follow a control image (repeatable), as inpaint takes it")
    cmd.add_argument("--image-prompt", action="append", default=[], metavar="IMAGE[:WEIGHT]",
                     help="take the look of a reference picture (IP-Adapter, repeatable)")
    cmd.add_argument("--ip-adapter", metavar="MODEL",
                     help="IP-Adapter id for --image-prompt (default: one that fits)")
    cmd.add_argument("-o", "--output", type=Path, required=True,
                     help="the picture (over IMAGE when given); -2, -3... for more variants")
    add_result_layer_flags(cmd)
    add_task_flags(cmd, GENERATE)
    cmd.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from sfumato.core.pixels.arrays import raster_to_array

    settings = load_settings(args.endpoint)
    like: ImageInfo | None = None
    if args.image is not None:
        like = probe(args.image, settings.max_pixels)
        canvas = read_rgba(args.image, settings.max_pixels)
    else:
        width, height = parse_size(args.size)
        canvas = Raster(width, height, Layout.RGBA8, bytes(width * height * 4))
    rasters = [canvas]
    if args.mask is not None:
        mask_info = probe(args.mask, settings.max_pixels)
        if (mask_info.width, mask_info.height) != (canvas.width, canvas.height):
            what = "the image" if like is not None else "--size"
            raise SfumatoError(ErrorCode.BAD_PARAMS, f"the mask is {mask_info.width}×"
                               f"{mask_info.height} but {what} is {canvas.width}×"
                               f"{canvas.height}: make them the same size (white = paint)")
        rasters.append(read_mask(args.mask, settings.max_pixels))
    params = task_values(args, GENERATE)
    params.update(guide_params(args.control, args.image_prompt, args.ip_adapter, rasters))
    refuse_existing_variants(args.output, args.layer_out, int(params.get("variants") or 1),
                             args.overwrite)
    with connect_or_start(settings, "generate") as client:
        model = choose_model(client, "generate", args.model)
        version = client.hello().daemon_version
        outcome = run_job(client, "generate", params, rasters, model, "generate")
    info = ResultInfo.from_wire(outcome.result.info)
    kept = recipes("generate", params, info, len(outcome.rasters), version)
    write_variants(raster_to_array(canvas), outcome.rasters, info.offset, canvas.layout, kept,
                   args.output, args.layer_out, like, args.overwrite)
    print(json.dumps({"offset": list(info.offset), "seed": info.seed, "seeds": list(info.seeds),
                      "model": info.model, "warnings": list(info.warnings)}))
    return 0


def parse_size(text: str) -> tuple[int, int]:
    """"WxH" -> (W, H), each side 1 to 16384."""
    width, sep, height = text.lower().replace("×", "x").partition("x")
    if sep and width.strip().isdigit() and height.strip().isdigit():
        size = int(width), int(height)
        if all(1 <= side <= MAX_SIDE for side in size):
            return size
    raise SfumatoError(ErrorCode.BAD_PARAMS, f"--size {text!r}: write it as WIDTHxHEIGHT, "
                       f"each side 1 to {MAX_SIDE} pixels (e.g. 1216x832)")

