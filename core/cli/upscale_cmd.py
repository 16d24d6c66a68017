"""`sfumato upscale`: one image, many, or a folder, through the daemon."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sfumato.core.cli.launcher import connect_or_start
from sfumato.core.cli.progress_bar import ProgressBar
from sfumato.core.config import load_settings
from sfumato.core.pixels.image_files import (
    IMAGE_SUFFIXES,
    has_alpha_channel,
    read_rgba,
    write_image,
)


def register(verbs: argparse._SubParsersAction) -> None:
    cmd = verbs.add_parser(
        "upscale", help="upscale images with Real-ESRGAN or any spandrel model",
        description="Upscale images. Alpha is kept, 16-bit files stay 16-bit. With no --model "
        "the default Real-ESRGAN x4plus is used, imported from the bundled weights on first use.",
    )
    cmd.add_argument("inputs", nargs="+", type=Path, metavar="IN",
                     help="image files or folders of images")
    cmd.add_argument("-o", "--output", type=Path,
                     help="output file (one input) or folder (default: IN-x<scale>.png beside IN)")
    cmd.add_argument("--scale", type=float, help="target scale, any >0 (default: the model's)")
    cmd.add_argument("--model", help="model id from `sfumato models list`")
    cmd.add_argument("--tile", type=int, default=0, help="tile size in pixels (default: auto)")
    cmd.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    files = _expand(args.inputs)
    if not files:
        print("sfumato: no images found in the given inputs", file=sys.stderr)
        return 1
    missing = [str(path) for path in files if not path.is_file()]
    if missing:  # before a daemon is started for nothing
        print(f"sfumato: error: no such file: {', '.join(missing)}", file=sys.stderr)
        return 1
    settings = load_settings(args.endpoint)
    params: dict = {"tile": args.tile}
    if args.scale is not None:
        params["scale"] = args.scale
    with connect_or_start(settings) as client:
        for index, path in enumerate(files, start=1):
            raster = read_rgba(path)
            bar = ProgressBar(f"[{index}/{len(files)}] {path.name}")
            outcome = client.run("upscale", params, [raster], args.model, on_event=bar)
            bar.finish()
            target = _output_path(path, args.output, len(files), outcome.result.info)
            write_image(target, outcome.rasters[0], drop_alpha=not has_alpha_channel(path))
            out = outcome.rasters[0]
            print(f"{path} -> {target} ({out.width}x{out.height})")
    return 0


def _expand(inputs: list[Path]) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            files.extend(sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            files.append(item)
    return files


def _output_path(source: Path, output: Path | None, count: int, info: dict) -> Path:
    scale = info.get("scale", 4)
    name = f"{source.stem}-x{scale:g}.png"
    if output is None:
        return source.with_name(name)
    if count == 1 and output.suffix.lower() in IMAGE_SUFFIXES:
        return output
    return output / name
