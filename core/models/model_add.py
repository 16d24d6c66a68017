"""`sfumato models add/scan`: work out what a local file or folder is, and register it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.schema import SUPIR_BASE_KINDS
from sfumato.core.errors import SfumatoError
from sfumato.core.models.registry import (
    ModelEntry,
    ModelFormat,
    ModelKind,
    Registry,
    require_kind,
)

WEIGHT_SUFFIXES = {".safetensors", ".pth", ".pt", ".ckpt", ".bin"}


def register_model(registry: Registry, name: str, path: Path, *, config: Path | None = None,
                   kind: str | None = None, base: str | None = None) -> ModelEntry:
    """`base`: for a SUPIR file, the registered SDXL model it runs over (kept as its config)."""
    entry = describe_model(name, path.expanduser().resolve(), config=config, kind=kind)
    if base is not None:
        if entry.kind != ModelKind.SUPIR.value:
            raise SfumatoError(ErrorCode.BAD_PARAMS, f"--base names a SUPIR model's SDXL base; "
                               f"{path.name} is a {entry.kind} model: leave --base out")
        require_kind(registry.get(base), SUPIR_BASE_KINDS)
        entry = dataclasses.replace(entry, config=base)
    registry.add(entry)
    return entry


def describe_model(name: str, path: Path, *, config: Path | None = None,
                   kind: str | None = None) -> ModelEntry:
    from sfumato.core.models.diffusion_loader import detect_diffusion_kind
    from sfumato.core.models.guide_loader import detect_guide_kind

    if not path.exists():
        raise SfumatoError(ErrorCode.NOT_FOUND, f"{path} does not exist")
    if kind is not None and kind not in {k.value for k in ModelKind}:
        known = ", ".join(k.value for k in ModelKind)
        raise SfumatoError(ErrorCode.BAD_PARAMS, f"unknown kind {kind!r}; use one of {known}")
    guide = detect_guide_kind(path)
    if path.is_dir():
        found = detect_diffusion_kind(path) or guide
        if found is None:
            raise SfumatoError(ErrorCode.BAD_PARAMS,
                               f"{path} is not a diffusers pipeline folder (no model_index.json) "
                               "nor a ControlNet, T2I-Adapter, image encoder, depth or pose "
                               "(ViTPose) model folder (config.json)")
        return ModelEntry(name, kind or found[0], str(path), found[1])
    if guide is not None and guide[0] == ModelKind.CONTROLNET.value:
        # a single-file ControlNet: its config comes from the UNet it runs beside
        return ModelEntry(name, guide[0], str(path), guide[1])
    if guide is not None:  # an IP-Adapter file; `config` is the image encoder it reads with
        return ModelEntry(name, guide[0], str(path), guide[1],
                          config=_image_encoder_folder(path, config))
    if path.suffix.lower() not in WEIGHT_SUFFIXES:
        raise SfumatoError(ErrorCode.BAD_PARAMS,
                           f"{path.name} is not a weights file (.safetensors or .pth)")
    supir = _supir_model(name, path)  # SUPIR (.safetensors); its pickled .ckpt refused
    if supir is not None:
        return supir
    if config is not None:
        found = detect_diffusion_kind(config.expanduser().resolve())
        if found is None:
            raise SfumatoError(ErrorCode.BAD_PARAMS, f"--config {config} has no model_index.json")
        if path.suffix.lower() != ".safetensors":
            raise SfumatoError(ErrorCode.UNSAFE_WEIGHTS,
                               "single-file checkpoints must be .safetensors: a .ckpt/.pth "
                               "checkpoint needs unpickling, which can run code")
        return ModelEntry(name, kind or found[0], str(path), ModelFormat.SINGLE_FILE.value,
                          config=str(config.expanduser().resolve()))
    fill = _fill_model(name, path)  # LaMa / MAT (object removal); TorchScript refused
    if fill is not None:
        return fill
    from sfumato.core.models.upscaler_loader import detect_upscaler

    if detect_upscaler(path):
        fmt = ModelFormat.SAFETENSORS if path.suffix.lower() == ".safetensors" else ModelFormat.PTH
        return ModelEntry(name, ModelKind.UPSCALER.value, str(path), fmt.value)
    raise SfumatoError(ErrorCode.BAD_PARAMS,
                       f"{path.name} is not an upscaler spandrel knows; a diffusion checkpoint "
                       "needs --config pointing at a local diffusers config folder")


def _supir_model(name: str, path: Path) -> ModelEntry | None:
    """A SUPIR-v0Q / v0F .safetensors file (it runs over a registered SDXL base); a pickled
    SUPIR .ckpt is refused, naming the files to get; None for anything else."""
    from sfumato.core.diffusion.supir.checkpoint import refuse_pickled_supir
    from sfumato.core.diffusion.supir.key_mapping import is_supir
    from sfumato.core.models.checkpoint_header import tensor_shapes

    refuse_pickled_supir(path)
    if path.suffix.lower() != ".safetensors" or not is_supir(tensor_shapes(path)):
        return None
    return ModelEntry(name, ModelKind.SUPIR.value, str(path), ModelFormat.SAFETENSORS.value)


def _fill_model(name: str, path: Path) -> ModelEntry | None:
    """A LaMa or MAT .safetensors file, checked to load; None for anything else. A TorchScript
    archive (IOPaint's big-lama.pt) is refused, saying which file to get instead."""
    from sfumato.core.models.checkpoint_header import tensor_shapes
    from sfumato.core.models.fill_loader import (
        fill_kind_of_keys,
        load_fill_model,
        refuse_unsafe_fill,
    )

    refuse_unsafe_fill(path)
    if path.suffix.lower() != ".safetensors":
        _refuse_pickled_fill(path)
        return None
    kind = fill_kind_of_keys(frozenset(tensor_shapes(path)))
    if kind is None:
        return None
    load_fill_model(path)  # the architecture spandrel detects, loaded strictly
    return ModelEntry(name, kind, str(path), ModelFormat.SAFETENSORS.value)


def _refuse_pickled_fill(path: Path) -> None:
    """A LaMa or MAT in a .pth/.ckpt: refused (fills load from .safetensors only)."""
    from sfumato.core.models.fill_loader import SAFETENSORS_HINT, fill_kind_of_keys
    from sfumato.core.models.weights import load_state_dict

    if fill_kind_of_keys(frozenset(load_state_dict(path))) is not None:
        raise SfumatoError(ErrorCode.UNSAFE_WEIGHTS,
                           f"{path.name} is a LaMa or MAT model in a pickle-based file; sfumato "
                           f"loads those from .safetensors only: {SAFETENSORS_HINT}")


def _image_encoder_folder(adapter: Path, given: Path | None) -> str | None:
    """The image encoder folder an IP-Adapter file was given (--config), or the
    `image_encoder` folder released beside it; None: one is picked from the registry by size."""
    if given is not None:
        folder = given.expanduser().resolve()
        if not (folder / "config.json").is_file():
            raise SfumatoError(ErrorCode.BAD_PARAMS,
                               f"--config {given} is not an image encoder folder (no config.json)")
        return str(folder)
    beside = adapter.parent / "image_encoder"
    return str(beside) if (beside / "config.json").is_file() else None


def register_sources(registry: Registry, folder: Path, *, config: Path | None = None,
                     refused: list[str] | None = None) -> list[ModelEntry]:
    """Register every model found in a ComfyUI, A1111 or Hugging Face cache folder. What was
    found but cannot be registered (a checkpoint with no config, a pickled fill) is added to
    `refused` as "path: why and what to do", so the admin is told instead of left guessing."""
    from sfumato.core.models.sources import pickled_fills, scan_model_sources

    found = folder.expanduser().resolve()
    added = []
    for candidate in scan_model_sources(found):
        try:
            entry = describe_model(candidate.name, candidate.path, config=config)
        except SfumatoError as exc:
            if refused is not None:
                refused.append(f"{candidate.path}: {exc.message}")
            continue
        registry.add(entry)
        added.append(entry)
    for path in pickled_fills(found):
        try:
            describe_model(path.stem, path)  # refuses it, saying what to get instead
        except SfumatoError as exc:
            if refused is not None:
                refused.append(f"{path}: {exc.message}")
    return added
