"""`sfumato cutout`: the main subject (or the object prompted) on a transparent background,
edges softened by a matting model when one is registered. The input file is never written."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sfumato.bridge.schema import SEGMENT
from sfumato.core.cli import segment_cmd
from sfumato.core.cli.task_flags import add_task_flags


def register(verbs: argparse._SubParsersAction) -> None:
    text = "the main subject (or the object prompted) on a transparent background"
    cmd = verbs.add_parser("cutout", help=text, description=text.capitalize() + "; the input "
                           "stays as it is. Soft edges (hair, fur) come from a registered "
                           "matting model (VitMatte); --no-soft keeps the edge hard.")
    cmd.add_argument("image", type=Path)
    segment_cmd.add_prompt_flags(cmd)
    cmd.add_argument("--model", help="segmenter id from `sfumato models list`")
    cmd.add_argument("-o", "--output", type=Path, required=True,
                     help="the cut-out: RGBA PNG, transparent where nothing is selected")
    cmd.add_argument("--overwrite", action="store_true",
                     help="replace an output file that exists (default: refuse)")
    add_task_flags(cmd, SEGMENT)
    cmd.set_defaults(run=run, soft=True)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from sfumato.core.cli.output_paths import refuse_existing
    from sfumato.core.pixels.arrays import array_to_raster, raster_to_array
    from sfumato.core.pixels.image_files import write_image

    refuse_existing(args.output, args.overwrite)
    if args.output.resolve() == args.image.resolve():
        refuse_existing(args.output, False)  # never over the source, even with --overwrite
    image, mask, info = segment_cmd.segment_image(args)
    pixels = raster_to_array(image).copy()
    top = np.iinfo(pixels.dtype).max
    # alpha = the source's alpha times the mask, rounded; colour kept as it was
    alpha = pixels[..., 3].astype(np.float64) * mask.astype(np.float64) / 255.0
    pixels[..., 3] = np.clip(alpha + 0.5, 0, top).astype(pixels.dtype)
    write_image(args.output, array_to_raster(pixels, image.layout), overwrite=args.overwrite)
    print(f"wrote {args.output}")
    print(json.dumps({"model": info.model, "warnings": list(info.warnings)}))
    return 0
