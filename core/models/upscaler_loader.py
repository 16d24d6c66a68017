"""Upscaler weights -> a ready spandrel model: safe reading, architecture detection, device."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from sfumato.bridge.protocol import ErrorCode
from sfumato.core.errors import SfumatoError
from sfumato.core.models.ncnn_import import META_SCALE
from sfumato.core.models.torchvision_guard import (
    prepare_spandrel_import,
    spandrel_disabled_architectures,
    torchvision_hint,
)
from sfumato.core.models.weights import load_state_dict, read_metadata

if TYPE_CHECKING:
    import spandrel

# Carried in the descriptor's tags: the scale of the whole model when it differs from the
# network's (ncnn animevideov3-x2 is the x4 network followed by a x0.5 resize).
SCALE_TAG = "sfumato-scale="
# Convolution-only nets run about twice as fast in channels-last layout on the CPU (and suit
# tensor cores); other architectures may .view() their input, which needs the default layout.
CHANNELS_LAST_ARCHITECTURES = frozenset({"ESRGAN", "Compact"})
# No single-image upscaler comes near this; a file this big is a diffusion checkpoint.
_MAX_UPSCALER_BYTES = 4 << 30


def load_upscaler(
    entry_path: Path, allow_pickle: bool = False, device: str | None = None
) -> spandrel.ImageModelDescriptor:
    """The model in `entry_path`, in eval mode: fp32 on the CPU; moved to `device` when given,
    in fp16 there if it is a CUDA device and the architecture supports half precision."""
    prepare_spandrel_import()
    import spandrel  # late: importing it pulls in every architecture

    path = Path(entry_path)
    state = load_state_dict(path, allow_pickle=allow_pickle)
    try:
        model = spandrel.ModelLoader().load_from_state_dict(state)
    except spandrel.UnsupportedModelError:
        raise SfumatoError(
            ErrorCode.WRONG_MODEL_KIND,
            f"{path.name} is not an upscaler architecture sfumato knows (spandrel's list: "
            "ESRGAN/Real-ESRGAN, SwinIR, HAT, DAT, SPAN, ...); register it with the right kind",
        ) from None
    except (RuntimeError, KeyError, ValueError, IndexError, TypeError) as exc:
        detail = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise SfumatoError(
            ErrorCode.CORRUPT_WEIGHTS,
            f"{path.name} looks like an upscaler but its tensors do not fit ({detail}); "
            "re-download or re-import it",
        ) from None
    _check_usable(model, path)
    scale = read_metadata(path).get(META_SCALE)
    if scale is not None and float(scale) != model.scale:
        model.tags.append(f"{SCALE_TAG}{scale}")
    model.eval()
    if str(model.architecture.id) in CHANNELS_LAST_ARCHITECTURES:
        model.model.to(memory_format=torch.channels_last)
    if device is not None:
        model.to(device)
        if model.device.type == "cuda" and model.supports_half:
            model.half()
    return model


def output_scale(model: spandrel.ImageModelDescriptor) -> float:
    """The scale the model's publisher intended: the network's, unless a tag says otherwise."""
    for tag in model.tags:
        if tag.startswith(SCALE_TAG):
            return float(tag[len(SCALE_TAG) :])
    return float(model.scale)


def input_memory_format(model: spandrel.ImageModelDescriptor) -> torch.memory_format:
    """The layout to hand the model its input in."""
    if str(model.architecture.id) in CHANNELS_LAST_ARCHITECTURES:
        return torch.channels_last
    return torch.contiguous_format


def detect_upscaler(path: Path) -> bool:
    """Whether `path` holds an RGB image-to-image model sfumato can run as an upscaler.

    Weights that are unsafe or damaged raise their SfumatoError, so the admin sees why.
    """
    path = Path(path)
    if path.is_file() and path.stat().st_size > _MAX_UPSCALER_BYTES:
        return False
    try:
        load_upscaler(path)
    except SfumatoError as exc:
        if exc.code is ErrorCode.WRONG_MODEL_KIND:
            return False
        raise
    return True


def _check_usable(model: object, path: Path) -> None:
    import spandrel

    if not isinstance(model, spandrel.ImageModelDescriptor):
        raise SfumatoError(
            ErrorCode.WRONG_MODEL_KIND,
            f"{path.name} is a {type(model).__name__} (e.g. an inpainting model), not an upscaler",
        )
    if model.architecture.id in spandrel_disabled_architectures():
        raise SfumatoError(
            ErrorCode.INTERNAL,
            f"{path.name} is a {model.architecture.name} model: {torchvision_hint()}",
        )
    if model.input_channels != 3 or model.output_channels != 3:
        raise SfumatoError(
            ErrorCode.WRONG_MODEL_KIND,
            f"{path.name} works on {model.input_channels}-channel images; "
            "sfumato's upscale task needs an RGB (3-channel) model",
        )
