"""`sfumato preprocess KIND IMAGE -o OUT`: see the control image a preprocessor makes."""

from __future__ import annotations

import argparse
from pathlib import Path

from sfumato.core.cli.job_runner import run_job
from sfumato.core.cli.launcher import connect_or_start
from sfumato.core.cli.output_paths import refuse_existing
from sfumato.core.config import load_settings
from sfumato.core.pixels.image_files import read_rgba, write_image

KINDS = ("canny, lineart, scribble, softedge, tile, depth (needs a depth model), "
         "pose (needs a ViTPose model)")


def register(verbs: argparse._SubParsersAction) -> None:
    text = "make a control image from a picture (the `auto` of --control)"
    cmd = verbs.add_parser("preprocess", help=text, description=text.capitalize() +
                           f". KIND: {KINDS}.")
    cmd.add_argument("kind")
    cmd.add_argument("image", type=Path)
    cmd.add_argument("-o", "--output", type=Path, required=True)
    cmd.add_argument("--overwrite", action="store_true",
                     help="replace the output file if it exists (default: refuse)")
    cmd.add_argument("--model", help="depth or pose model id for depth or pose (default: the "
                     "registered one)")
    cmd.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.endpoint)
    refuse_existing(args.output, args.overwrite)
    image = read_rgba(args.image, settings.max_pixels)
    with connect_or_start(settings, "preprocess") as client:
        outcome = run_job(client, "preprocess", {"kind": args.kind}, [image], args.model,
                          "preprocess")
    write_image(args.output, outcome.rasters[0], drop_alpha=True, overwrite=args.overwrite)
    print(f"wrote {args.output}")
    return 0
