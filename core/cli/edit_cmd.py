"""`sfumato edit`: change a picture (or the white part of a mask) as an instruction says, with
an edit model (InstructPix2Pix, FLUX.1 Kontext, Qwen-Image-Edit), as the plug-ins' Edit does."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.recipe import recipes
from sfumato.bridge.schema import EDIT, ResultInfo
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
from sfumato.core.pixels.image_files import probe, read_mask, read_rgba


def register(verbs: argparse._SubParsersAction) -> None:
    text = EDIT.summary
    cmd = verbs.add_parser(
        "edit", help=text, description=text[:1].upper() + text[1:] + ". The result lies "
        "exactly over the picture (no shift, no zoom); outside the mask nothing changes. "
        "Mask: white = edit, black = keep.")
    cmd.add_argument("image", type=Path)
    cmd.add_argument("--mask", type=Path, help="edit only the white part (the IMAGE's size)")
    cmd.add_argument("--model", help="edit model id from `sfumato models list` "
                     "(InstructPix2Pix, FLUX.1 Kontext, Qwen-Image-Edit)")
    cmd.add_argument("-o", "--output", type=Path, required=True,
                     help="the edited picture; -2, -3... for more variants")
    add_result_layer_flags(cmd)
    add_task_flags(cmd, EDIT)
    cmd.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from sfumato.core.pixels.arrays import raster_to_array

    settings = load_settings(args.endpoint)
    params = task_values(args, EDIT)
    if not str(params.get("instruction") or "").strip():  # before any daemon starts
        raise SfumatoError(ErrorCode.BAD_PARAMS, "say what to change with --instruction, "
                           "e.g. --instruction \"make it night\"")
    like = probe(args.image, settings.max_pixels)
    image = read_rgba(args.image, settings.max_pixels)
    rasters = [image]
    if args.mask is not None:
        mask_info = probe(args.mask, settings.max_pixels)
        if (mask_info.width, mask_info.height) != (image.width, image.height):
            raise SfumatoError(ErrorCode.BAD_PARAMS, f"the mask is {mask_info.width}×"
                               f"{mask_info.height} but the image is {image.width}×"
                               f"{image.height}: make them the same size (white = edit)")
        rasters.append(read_mask(args.mask, settings.max_pixels))
    refuse_existing_variants(args.output, args.layer_out, int(params.get("variants") or 1),
                             args.overwrite)
    with connect_or_start(settings, "edit") as client:
        model = choose_model(client, "edit", args.model)
        version = client.hello().daemon_version
        outcome = run_job(client, "edit", params, rasters, model, "edit")
    info = ResultInfo.from_wire(outcome.result.info)
    kept = recipes("edit", params, info, len(outcome.rasters), version)
    write_variants(raster_to_array(image), outcome.rasters, info.offset, image.layout, kept,
                   args.output, args.layer_out, like, args.overwrite)
    print(json.dumps({"offset": list(info.offset), "seed": info.seed, "seeds": list(info.seeds),
                      "model": info.model, "warnings": list(info.warnings)}))
    return 0
