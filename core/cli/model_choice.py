"""Which model a diffusion verb runs when none is named, and what to tell someone who has
none: the kinds of weights that work, how to register what they already have, and what
`models pull` can fetch."""

from __future__ import annotations

import sys

from sfumato.bridge.client import Client
from sfumato.bridge.protocol import ErrorCode
from sfumato.core.errors import SfumatoError
from sfumato.core.tasks import task_spec

NO_WEIGHTS_TEXT = (
    "`sfumato {task}` needs diffusion weights of a kind it can use ({kinds}) and none is "
    "registered. What works: Stable Diffusion 1.5 or SDXL (an inpainting model paints a "
    "selection best, e.g. stable-diffusion-xl-1.0-inpainting-0.1 or "
    "stable-diffusion-inpainting), as a diffusers folder or one .safetensors checkpoint, or a "
    "FLUX (Fill) diffusers folder. Weights you already have: `sfumato models scan FOLDER` "
    "registers every model in a ComfyUI models folder (~/ComfyUI/models), an A1111 one "
    "(stable-diffusion-webui/models) or the Hugging Face cache (~/.cache/huggingface/hub); "
    "one folder or file: `sfumato models add NAME PATH`. `sfumato models pull` fetches only "
    "the Real-ESRGAN upscalers; download diffusion weights yourself (e.g. from "
    "huggingface.co), then `sfumato models add`."
)

EDIT_WEIGHTS_TEXT = (
    "`sfumato edit` needs an edit model ({kinds}) and none is registered. What works: "
    "InstructPix2Pix (timbrooks/instruct-pix2pix, or its .safetensors checkpoint with "
    "--config), FLUX.1 Kontext, Qwen-Image-Edit or FLUX.2 Klein as diffusers folders. Weights "
    "you already have: `sfumato models scan FOLDER` (ComfyUI, A1111, the Hugging Face cache); "
    "one folder or file: `sfumato models add NAME PATH`."
)


def choose_model(client: Client, task: str, model: str | None) -> str | None:
    """`model`, or the only registered model that fits `task`; refuses with guidance when
    there is none, or several to choose from."""
    if model is not None or task == "remove":  # remove: the daemon picks LaMa/MAT, else Telea
        return model
    kinds = task_spec(task).model_kinds
    fitting = [m for m in client.hello().models if m.get("kind") in kinds]
    if len(fitting) == 1:
        print(f"using model {fitting[0]['id']} ({fitting[0]['kind']}): the only one that fits",
              file=sys.stderr)
        return str(fitting[0]["id"])
    if fitting:
        listed = ", ".join(f"{m['id']} ({m['kind']})" for m in fitting)
        raise SfumatoError(ErrorCode.BAD_PARAMS,
                           f"choose a model with --model: registered ones that fit: {listed}")
    text = EDIT_WEIGHTS_TEXT if task == "edit" else NO_WEIGHTS_TEXT
    raise SfumatoError(ErrorCode.UNKNOWN_MODEL,
                       text.format(task=task, kinds=", ".join(sorted(kinds))))
