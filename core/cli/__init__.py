"""The `sfumato` command line: batch work and admin, through the same daemon as the plug-ins."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sfumato.bridge.client import ClientError
from sfumato.bridge.endpoints import DEFAULT_ENDPOINT
from sfumato.core.errors import SfumatoError

EPILOG = """
examples:
  sfumato upscale photo.png                  4x with Real-ESRGAN (weights imported on first use)
  sfumato upscale scans/ -o big/ --scale 2   every image in a folder, 2x
  sfumato inpaint img.png --mask m.png --prompt "a red kite" --model sdxl-inpaint -o out.png
  sfumato generate --prompt "a lighthouse at dusk" --size 1216x832 -o new.png
  sfumato expand img.png --right 512 --prompt "more coastline" --model sdxl-inpaint -o wide.png
  sfumato remove img.png --mask m.png -o out.png   the masked object gone (LaMa, MAT, Telea)
  sfumato segment img.png --point 120,80 -o mask.png   a selection mask from a click (SAM)
  sfumato cutout img.png -o subject.png      the main subject, background transparent
  sfumato edit img.png --instruction "make it night" --model kontext -o night.png
  sfumato models list                        what the daemon can use
  sfumato status                             is a daemon running, what is it doing
  sfumato cancel --all-mine                  stop every job your sfumato commands started
  sfumato stop                               stop the daemon (the running job may finish)
  sfumato keys --help                        serving other machines: CURVE keys

A command that needs the daemon starts one when none answers at SFUMATO_ENDPOINT
(default tcp://127.0.0.1:5655, on loopback). Models, config and logs live in SFUMATO_HOME
(default ~/.local/share/sfumato).
"""


def build_parser() -> argparse.ArgumentParser:
    from sfumato.core.cli import (
        cancel_cmd,
        cutout_cmd,
        diffusion_cmd,
        doctor_cmd,
        edit_cmd,
        expand_cmd,
        generate_cmd,
        inspect_cmd,
        keys_cmd,
        models_cmd,
        plugins_cmd,
        preprocess_cmd,
        remove_cmd,
        segment_cmd,
        serve_cmd,
        status_cmd,
        stop_cmd,
        upscale_cmd,
    )

    parser = argparse.ArgumentParser(
        prog="sfumato", description="Generative image editing for GIMP 3 and Krita, and batch "
        "work from the shell, served by one local daemon.", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common_options(parser, default=None)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    for module in (serve_cmd, status_cmd, cancel_cmd, stop_cmd, upscale_cmd, diffusion_cmd,
                   generate_cmd, expand_cmd, inspect_cmd, preprocess_cmd, models_cmd, plugins_cmd,
                   doctor_cmd, keys_cmd):
        module.register(verbs)
    remove_cmd.register(verbs)
    segment_cmd.register(verbs)
    cutout_cmd.register(verbs)
    edit_cmd.register(verbs)
    _common_options_after_verbs(verbs)
    return parser


def _add_common_options(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("--endpoint", default=default, help="daemon address (default: "
                        f"$SFUMATO_ENDPOINT or {DEFAULT_ENDPOINT})")


def _common_options_after_verbs(verbs: argparse._SubParsersAction) -> None:
    """`sfumato serve --endpoint E` as well as `sfumato --endpoint E serve`: every verb (and
    sub-verb) takes the common options too; SUPPRESS keeps a value given before the verb."""
    for sub in verbs.choices.values():
        _add_common_options(sub, default=argparse.SUPPRESS)
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                _common_options_after_verbs(action)


def main(argv: Sequence[str] | None = None) -> int:
    from sfumato.core.cli.job_runner import interrupt_on_sigterm

    parser = build_parser()
    args = parser.parse_args(argv)
    interrupt_on_sigterm()  # `serve` puts its own graceful handlers in place of these
    try:
        return int(args.run(args) or 0)
    except (ClientError, SfumatoError) as exc:
        print(f"sfumato: error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sfumato: interrupted", file=sys.stderr)
        return 130
