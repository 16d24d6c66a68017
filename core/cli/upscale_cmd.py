"""`sfumato upscale`: one image, many, or a folder, through the daemon."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sfumato.bridge.schema import UPSCALE, ResultInfo
from sfumato.core.cli.job_runner import run_job
from sfumato.core.cli.launcher import connect_or_start
from sfumato.core.cli.output_paths import check_output, expand, refuse_existing, target
from sfumato.core.cli.task_flags import add_task_flags, task_values
from sfumato.core.config import load_settings
from sfumato.core.pixels.image_files import probe, read_rgba, write_image


def register(verbs: argparse._SubParsersAction) -> None:
    cmd = verbs.add_parser(
        "upscale", help="upscale images with Real-ESRGAN or any spandrel model",
        description="Upscale images. Alpha, grey, 16 bits and the colour profile are kept. "
        "Ctrl-C cancels the running job. With no --model "
        "the default Real-ESRGAN x4plus is used, imported from the bundled weights on first use.",
    )
    cmd.add_argument("inputs", nargs="+", type=Path, metavar="IN",
                     help="image files or folders of images")
    cmd.add_argument("-o", "--output", type=Path,
                     help="output file (one input) or folder (default: IN-x<scale>.png beside "
                     "IN, and a folder's results in FOLDER-upscaled/)")
    cmd.add_argument("--overwrite", action="store_true",
                     help="replace output files that exist (default: refuse)")
    cmd.add_argument("--model", help="model id from `sfumato models list`")
    cmd.add_argument("--region", type=_region, metavar="X,Y,W,H",
                     help="upscale only this rectangle (pixels of the input), seen in its "
                     "surroundings as the plug-ins' selection-only upscale does; the output is "
                     "that rectangle, scaled")
    add_task_flags(cmd, UPSCALE)
    # a SUPIR model reads the refine's prompt: the short name an artist reaches for
    cmd.add_argument("--prompt", dest="refine_prompt", default=argparse.SUPPRESS,
                     metavar="TEXT", help="what the picture shows, for a SUPIR model or the "
                     "refine (the same as --refine-prompt)")
    cmd.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    sources = expand(args.inputs)
    if not sources:
        print("sfumato: no images found in the given inputs", file=sys.stderr)
        return 1
    missing = [str(s.path) for s in sources if not s.path.is_file()]
    if missing:  # before a daemon is started for nothing
        print(f"sfumato: error: no such file: {', '.join(missing)}", file=sys.stderr)
        return 1
    check_output(args.output, len(sources))
    settings = load_settings(args.endpoint)
    params = task_values(args, UPSCALE)
    if args.region is not None:
        params["region"] = list(args.region)
    infos = [probe(s.path, settings.max_pixels) for s in sources]  # headers: sizes, colour
    scale: float | None = params.get("scale") or None  # the model's once a result says it
    with connect_or_start(settings, "upscale") as client:
        for index, (source, info) in enumerate(zip(sources, infos, strict=True), start=1):
            if scale is not None:  # known: refuse before the work, not after
                refuse_existing(target(source, args.output, len(sources), scale),
                                args.overwrite)
            raster = read_rgba(source.path, settings.max_pixels)
            outcome = run_job(client, "upscale", params, [raster], args.model,
                              f"[{index}/{len(sources)}] {source.path.name}")
            scale = ResultInfo.from_wire(outcome.result.info).scale or 4
            path = target(source, args.output, len(sources), scale)
            write_image(path, outcome.rasters[0], like=info, overwrite=args.overwrite)
            out = outcome.rasters[0]
            print(f"{source.path} -> {path} ({out.width}x{out.height})")
    return 0


def _region(text: str) -> tuple[int, int, int, int]:
    """"X,Y,W,H" in whole pixels, W and H positive."""
    try:
        x, y, w, h = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: write the region as X,Y,W,H in whole pixels, e.g. 100,50,256,256"
        ) from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the width and height must be above 0")
    return x, y, w, h
