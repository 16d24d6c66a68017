"""Segmenters (SAM, SAM 2.1, SAM 3) and matting models (VitMatte): a transformers model folder
(config.json + .safetensors) loaded through transformers' own classes. Nothing is fetched and
pickle weights are refused (check_folder_weights) before transformers sees the folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sfumato.bridge.protocol import ErrorCode
from sfumato.core.errors import SfumatoError
from sfumato.core.models.guarded_load import load_or_refuse
from sfumato.core.models.guide_loader import check_folder_weights, read_config
from sfumato.core.models.matting_run import Matting
from sfumato.core.models.registry import ModelEntry, ModelKind
from sfumato.core.models.segmenter_run import FAMILY_OF_ARCHITECTURE, Segmenter


def load_segmenter(entry: ModelEntry, device: str) -> Segmenter:
    """A SAM / SAM 2.1 / SAM 3 folder as a Segmenter on `device` (float32: the image encoder
    runs once per layer version, the decoder in milliseconds)."""
    path = Path(entry.path)
    family = _family(path)
    model_class = _transformers_class(_ARCHITECTURES[family])
    model = _load(path, model_class)
    tokenizer = _tokenizer(path) if family == "sam3" else None
    return Segmenter(family, model.to(device).eval(), device, tokenizer)


def load_matting(entry: ModelEntry, device: str) -> Matting:
    path = Path(entry.path)
    architecture = _architecture(path)
    if architecture != "VitMatteForImageMatting":
        raise SfumatoError(ErrorCode.WRONG_MODEL_KIND, f"model {entry.name!r} ({architecture}) "
                           "is not a VitMatte matting model; register a VitMatte folder "
                           "(VitMatteForImageMatting) as the matting model")
    model = _load(path, _transformers_class(architecture))
    return Matting(model.to(device).eval(), device)


def load_segmentation_model(entry: ModelEntry, device: str) -> Segmenter | Matting:
    if entry.kind == ModelKind.MATTING.value:
        return load_matting(entry, device)
    return load_segmenter(entry, device)


_ARCHITECTURES = {family: arch for arch, family in FAMILY_OF_ARCHITECTURE.items()}


def _architecture(path: Path) -> str:
    config = read_config(path) or {}
    return str((config.get("architectures") or [config.get("model_type")])[0])


def _family(path: Path) -> str:
    architecture = _architecture(path)
    family = FAMILY_OF_ARCHITECTURE.get(architecture)
    if family is None:
        raise SfumatoError(ErrorCode.WRONG_MODEL_KIND, f"{path.name} is a {architecture}, not a "
                           "segmenter; register a SAM (SamModel), SAM 2.1 (Sam2Model) or SAM 3 "
                           "(Sam3Model) folder as the segmenter")
    return family


def _transformers_class(name: str) -> Any:
    from sfumato.core.models.torchvision_guard import guard_torchvision

    guard_torchvision()  # an unusable torchvision must look absent before transformers looks
    import transformers

    try:
        return getattr(transformers, name)
    except (AttributeError, ImportError, ModuleNotFoundError) as exc:
        raise SfumatoError(ErrorCode.MISSING_DEPENDENCY, f"this transformers "
                           f"({transformers.__version__}) has no {name} ({exc}); upgrade it: "
                           "pip install -U transformers") from None


def _load(path: Path, model_class: Any) -> Any:
    import torch

    check_folder_weights(path)
    return load_or_refuse(path, lambda: model_class.from_pretrained(
        str(path), local_files_only=True, use_safetensors=True, dtype=torch.float32))


def _tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    return load_or_refuse(path, lambda: AutoTokenizer.from_pretrained(
        str(path), local_files_only=True))
