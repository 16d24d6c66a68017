"""`sfumato remove`: the plug-ins' object removal, from the shell."""

from __future__ import annotations

import argparse
from pathlib import Path

from sfumato.bridge.schema import REMOVE
from sfumato.core.cli import diffusion_cmd
from sfumato.core.cli.task_flags import add_task_flags
from sfumato.core.cli.variant_outputs import add_result_layer_flags


def register(verbs: argparse._SubParsersAction) -> None:
    text = REMOVE.summary
    cmd = verbs.add_parser(REMOVE.name, help=text, description=text.capitalize() + ". Mask: "
                           "white = remove, black = keep. Pixels outside the feathered mask "
                           "stay exactly as they were. --model picks the engine: a LaMa or MAT "
                           "id (default: the registered one; none: OpenCV's Telea fill) or an "
                           "inpainting diffusion model, which refines the fill.")
    cmd.add_argument("image", type=Path)
    cmd.add_argument("--mask", type=Path, required=True)
    cmd.add_argument("--model", help="LaMa, MAT or inpaint model id from `sfumato models list`")
    cmd.add_argument("-o", "--output", type=Path, required=True,
                     help="the full composited image")
    add_result_layer_flags(cmd)
    add_task_flags(cmd, REMOVE)
    # the inpaint verb's run does the rest: read, send, composite, write (no guides here)
    cmd.set_defaults(run=diffusion_cmd.run, task=REMOVE.name, control=[], image_prompt=[],
                     ip_adapter=None)
