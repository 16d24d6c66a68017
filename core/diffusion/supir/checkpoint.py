"""Reading a SUPIR checkpoint: .safetensors only, its tensors renamed to our modules.

The published SUPIR-v0Q.ckpt / SUPIR-v0F.ckpt are pickles, which can run code when loaded:
they are recognised without unpickling (the tensor names in the archive's pickle are read as
opcodes, never executed) and refused, naming the .safetensors conversions to get instead.
"""

from __future__ import annotations

import pickletools
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from sfumato.bridge.protocol import ErrorCode
from sfumato.core.diffusion.supir.key_mapping import (
    CONTROL,
    is_conv_attention,
    is_supir,
    sort_keys,
)
from sfumato.core.errors import SfumatoError
from sfumato.core.models.weights import PICKLE_SUFFIXES

SAFETENSORS_HINT = (
    "get the .safetensors conversions of the SUPIR checkpoints instead (SUPIR-v0Q.safetensors "
    "or SUPIR-v0F.safetensors, e.g. the fp16 ones ComfyUI-SUPIR users share: "
    "SUPIR-v0Q_fp16.safetensors / SUPIR-v0F_fp16.safetensors), then `sfumato models add`"
)
_FIRST_OP = re.compile(r"model\.control_model\.input_blocks\.(\d+)\.0\.op\.weight$")
_PICKLE_SCAN_BYTES = 64 << 20  # a checkpoint's pickle (names and shapes) is a few MB


@dataclass
class SupirWeights:
    """SUPIR's own tensors, by the module that takes them (our names)."""

    control: dict[str, torch.Tensor]
    connectors: dict[str, torch.Tensor]
    encoder: dict[str, torch.Tensor]  # encoder.* and maybe quant_conv.* of an AutoencoderKL

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size()
                   for part in (self.control, self.connectors, self.encoder)
                   for t in part.values())


def is_pickled_supir(path: Path) -> bool:
    """A pickle-based file (.ckpt, .pth ...) holding a SUPIR control model, told by its name
    or by the tensor names in its pickle, read without unpickling."""
    if path.suffix.lower() not in PICKLE_SUFFIXES:
        return False
    if "supir" in path.name.lower():
        return True
    try:
        with zipfile.ZipFile(path) as archive:
            member = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
            if member is None or archive.getinfo(member).file_size > _PICKLE_SCAN_BYTES:
                return False
            data = archive.read(member)
        return any(isinstance(arg, str) and arg.startswith(CONTROL)
                   for _, arg, _ in pickletools.genops(data))
    except (OSError, zipfile.BadZipFile, ValueError):
        return False  # not a torch zip archive: not ours to judge


def refuse_pickled_supir(path: Path) -> None:
    if is_pickled_supir(path):
        raise SfumatoError(
            ErrorCode.UNSAFE_WEIGHTS,
            f"{path.name} is a SUPIR checkpoint in a pickle-based file, which can run code "
            f"when loaded; sfumato never unpickles: {SAFETENSORS_HINT}",
        )


def load_supir_weights(path: Path, device: str, dtype: torch.dtype) -> SupirWeights:
    """SUPIR's tensors from `path` (.safetensors), on `device` in `dtype`, renamed."""
    from safetensors import safe_open
    from sfumato.core.models.checkpoint_header import corrupt_weights, tensor_shapes

    if path.suffix.lower() != ".safetensors":
        refuse_pickled_supir(path)
        raise SfumatoError(ErrorCode.UNSAFE_WEIGHTS,
                           f"{path.name}: SUPIR loads from .safetensors only; {SAFETENSORS_HINT}")
    shapes = tensor_shapes(path)  # validates the header first
    if not is_supir(shapes):
        raise SfumatoError(ErrorCode.WRONG_MODEL_KIND,
                           f"{path.name} has no SUPIR control model; register a SUPIR-v0Q or "
                           "SUPIR-v0F .safetensors file as a supir model")
    keys = sort_keys(shapes, layers_per_block(shapes))
    if not any(ours.startswith("encoder.") for ours in keys.encoder):
        raise SfumatoError(ErrorCode.CORRUPT_WEIGHTS,
                           f"{path.name} lacks SUPIR's degradation-robust encoder "
                           "(first_stage_model.denoise_encoder.*); convert the full "
                           "SUPIR-v0Q / v0F checkpoint")
    parts: list[dict[str, torch.Tensor]] = [{}, {}, {}]
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            for part, names in zip(parts, (keys.control, keys.connectors, keys.encoder),
                                   strict=True):
                for ours, theirs in names.items():
                    tensor = handle.get_tensor(theirs)
                    if is_conv_attention(ours) and tensor.ndim == 4:
                        tensor = tensor[:, :, 0, 0]  # a 1x1 conv is a linear layer
                    part[ours] = tensor.to(device=device, dtype=dtype)
    except (OSError, RuntimeError) as exc:
        raise corrupt_weights(path, exc) from None
    control, connectors, encoder = parts
    return SupirWeights(control, {k.removeprefix("connectors."): v for k, v in connectors.items()},
                        encoder)


def layers_per_block(keys: Iterable[str]) -> int:
    """Resnets per level of the control model: its first downsampler follows them."""
    found = [int(m[1]) for k in keys if (m := _FIRST_OP.match(k))]
    return min(found) - 1 if found else 2  # no downsampler: one level; SDXL's count
