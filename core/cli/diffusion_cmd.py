"""`sfumato inpaint` and `sfumato refine`: the plug-ins' diffusion actions, from the shell."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.raster import Raster
from sfumato.core.cli.launcher import connect_or_start
from sfumato.core.cli.progress_bar import ProgressBar
from sfumato.core.config import load_settings
from sfumato.core.errors import SfumatoError
from sfumato.core.pixels.image_files import has_alpha_channel, read_mask, read_rgba, write_image


def register(verbs: argparse._SubParsersAction) -> None:
    for name, text in (("inpaint", "fill the white part of a mask from a prompt"),
                       ("refine", "rework an image (or its masked part) with a strength dial")):
        cmd = verbs.add_parser(name, help=text, description=text.capitalize() + ". Mask: white "
                               "= change, black = keep, grey = partly. Pixels outside the "
                               "feathered mask stay exactly as they were.")
        cmd.add_argument("image", type=Path)
        cmd.add_argument("--mask", type=Path, required=(name == "inpaint"))
        cmd.add_argument("--prompt", required=True)
        cmd.add_argument("--negative-prompt", default="")
        cmd.add_argument("--model", help="model id from `sfumato models list`")
        cmd.add_argument("--strength", type=float,
                         default=None if name == "refine" else 1.0,
                         required=(name == "refine"),
                         help="0 = keep the input, 1 = ignore it")
        cmd.add_argument("--steps", type=int, default=30)
        cmd.add_argument("--guidance", type=float, default=None)
        cmd.add_argument("--seed", type=int, help="random when absent; printed either way")
        cmd.add_argument("--variants", type=int, default=1)
        cmd.add_argument("--grow", type=int, default=8, help="grow the mask by PX")
        cmd.add_argument("--feather", type=int, default=16, help="soften its edge over PX")
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
                         help="the full composited image")
        cmd.add_argument("--layer-out", type=Path,
                         help="also write just the RGBA result layer (its offset is printed)")
        cmd.set_defaults(run=run, task=name)


def run(args: argparse.Namespace) -> int:
    from sfumato.core.pixels.arrays import array_to_raster, raster_to_array
    from sfumato.core.pixels.compose import composite_over

    image = read_rgba(args.image)
    rasters = [image]
    if args.mask is not None:
        rasters.append(read_mask(args.mask))
    params = {
        "prompt": args.prompt, "negative_prompt": args.negative_prompt, "steps": args.steps,
        "strength": args.strength, "variants": args.variants, "grow": args.grow,
        "feather": args.feather,
    }
    params.update(guide_params(args.control, args.image_prompt, args.ip_adapter, rasters))
    if args.seed is not None:
        params["seed"] = args.seed
    if args.guidance is not None:
        params["guidance"] = args.guidance
    settings = load_settings(args.endpoint)
    with connect_or_start(settings) as client:
        bar = ProgressBar(args.task)
        outcome = client.run(args.task, params, rasters, args.model, on_event=bar)
        bar.finish()
    info = outcome.result.info
    offset = tuple(info.get("offset", (0, 0)))
    source = raster_to_array(image)
    for index, layer in enumerate(outcome.rasters):
        suffix = "" if index == 0 else f"-{index + 1}"
        composite = composite_over(source, raster_to_array(layer), offset)
        out = args.output.with_name(args.output.stem + suffix + args.output.suffix)
        write_image(out, array_to_raster(composite, image.layout),
                    drop_alpha=not has_alpha_channel(args.image))
        if args.layer_out is not None:
            layer_path = args.layer_out.with_name(args.layer_out.stem + suffix +
                                                  args.layer_out.suffix)
            write_image(layer_path, layer)
        print(f"wrote {out}")
    print(json.dumps({"offset": list(offset), "seed": info.get("seed"),
                      "warnings": info.get("warnings", [])}))
    return 0


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
        control: dict[str, Any] = {"kind": kind, "image": "auto"}
        if image != "auto":
            rasters.append(read_rgba(Path(image)))
            control["image"] = len(rasters) - 1
        if scale is not None:
            control["scale"] = scale
        if model:
            control["model"] = model
        wired.append(control)
    if wired:
        params["controls"] = wired
    prompts = []
    for spec in image_prompts:
        image, weight = _split_number(spec, spec, "--image-prompt IMAGE[:WEIGHT]")
        rasters.append(read_rgba(Path(image)))
        prompt: dict[str, Any] = {"image": len(rasters) - 1}
        if weight is not None:
            prompt["weight"] = weight
        if ip_adapter:
            prompt["model"] = ip_adapter
        prompts.append(prompt)
    if prompts:
        params["image_prompts"] = prompts
    return params


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
