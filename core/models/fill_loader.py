"""Object-removal fills (LaMa, MAT) -> a ready spandrel model: .safetensors only, the
architecture detected by spandrel (MAT through spandrel-extra-arches), fp32, eval mode.

LaMa: spandrel's loader builds Big-LaMa's fixed shape (64 base features, 3 down-samplings, 18
FFC blocks). Checkpoints of the same family with other widths or depths (LaMa-Fourier's 9
blocks, the tiny networks the tests build) are rebuilt from spandrel's own generator class
with the sizes their tensors give, then loaded strictly all the same.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sfumato.bridge.protocol import ErrorCode
from sfumato.core.errors import SfumatoError
from sfumato.core.models.registry import ModelKind
from sfumato.core.models.torchvision_guard import prepare_spandrel_import

if TYPE_CHECKING:
    import spandrel
    import torch

# spandrel architecture id -> registry kind
FILL_ARCHITECTURES = {"LaMa": ModelKind.LAMA.value, "MAT": ModelKind.MAT.value}
# what to get instead of a TorchScript or pickle file (README: "Object removal")
SAFETENSORS_HINT = (
    "get big-lama.safetensors for LaMa or MAT_Places512_G_fp16.safetensors for MAT (or run "
    "`sfumato models pull lama` / `sfumato models pull mat`)"
)
# keys that tell a fill's state dict apart without loading it (spandrel's detect keys)
_DETECT_KEYS = {
    "LaMa": ("model.model.1.bn_l.running_mean", "generator.model.1.bn_l.running_mean"),
    "MAT": ("synthesis.first_stage.conv_first.conv.resample_filter",
            "model.synthesis.first_stage.conv_first.conv.resample_filter"),
}


def fill_kind_of_keys(keys: set[str] | frozenset[str]) -> str | None:
    """The registry kind ("lama", "mat") a state dict with these tensor names is, or None."""
    for architecture, detect in _DETECT_KEYS.items():
        if any(key in keys for key in detect):
            return FILL_ARCHITECTURES[architecture]
    return None


def is_torchscript(path: Path) -> bool:
    """Whether `path` is a TorchScript archive (a zip holding code and constants.pkl), as
    IOPaint's big-lama.pt is. Loading one means running its code: never done here."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("constants.pkl") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def refuse_unsafe_fill(path: Path) -> None:
    """UNSAFE_WEIGHTS for a TorchScript file, whatever it holds, saying what to get."""
    if is_torchscript(path):
        raise SfumatoError(
            ErrorCode.UNSAFE_WEIGHTS,
            f"{path.name} is a TorchScript archive (IOPaint's big-lama.pt is one): loading it "
            f"runs code from the file, which sfumato never does; {SAFETENSORS_HINT}",
        )


def load_fill_model(path: Path, device: str | None = None) -> spandrel.MaskedImageModelDescriptor:
    """The LaMa or MAT model in `path` (.safetensors), in eval mode, fp32, on `device`."""
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise SfumatoError(
            ErrorCode.UNSAFE_WEIGHTS,
            f"{path.name}: LaMa and MAT load from .safetensors only (a .pt/.pth/.ckpt is a "
            f"pickle or TorchScript file, which can run code); {SAFETENSORS_HINT}",
        )
    from sfumato.core.models.weights import load_state_dict  # late: torch

    state = load_state_dict(path)
    model = load_fill_state(state, path.name)
    model.eval()
    if device is not None:
        model.to(device)
    return model


def load_fill_state(state: dict[str, torch.Tensor],
                    name: str) -> spandrel.MaskedImageModelDescriptor:
    """A LaMa or MAT descriptor from a state dict (WRONG_MODEL_KIND when it is neither)."""
    prepare_spandrel_import()
    import spandrel

    _install_extra_architectures()
    kind = fill_kind_of_keys(frozenset(state))
    if kind is None:
        raise SfumatoError(ErrorCode.WRONG_MODEL_KIND,
                           f"{name} is not a LaMa or MAT model; {SAFETENSORS_HINT}")
    if kind == ModelKind.LAMA.value:  # a training checkpoint also holds its discriminator
        state = {k: v for k, v in state.items()
                 if k.startswith(("generator.model.", "model.model."))}
    try:
        model = spandrel.ModelLoader().load_from_state_dict(state)
    except spandrel.UnsupportedModelError:
        raise SfumatoError(
            ErrorCode.MISSING_DEPENDENCY,
            f"{name} is a MAT model and spandrel-extra-arches is not installed; install sfumato's "
            "daemon extra (`pip install 'sfumato[daemon]'`)",
        ) from None
    except RuntimeError as exc:  # strict loading: the tensors do not fit the fixed shape
        if kind != ModelKind.LAMA.value:
            raise _corrupt(name, exc) from None
        model = _sized_lama(state, name)
    if not isinstance(model, spandrel.MaskedImageModelDescriptor):
        raise SfumatoError(ErrorCode.WRONG_MODEL_KIND, f"{name} is not an inpainting model")
    return model


def fill_kind(model: Any) -> str:
    """The registry kind of a loaded fill model."""
    return FILL_ARCHITECTURES[str(model.architecture.id)]


def _install_extra_architectures() -> None:
    import spandrel

    try:
        import spandrel_extra_arches
    except ImportError:
        return  # MAT is then refused with MISSING_DEPENDENCY, LaMa still works
    if "MAT" not in spandrel.MAIN_REGISTRY:
        spandrel_extra_arches.install(ignore_duplicates=True)


def _sized_lama(state: dict[str, Any], name: str) -> spandrel.MaskedImageModelDescriptor:
    """A LaMa whose generator has the widths and depths its tensors say, from spandrel's own
    classes, loaded strictly."""
    from spandrel import MaskedImageModelDescriptor, SizeRequirements
    from spandrel.architectures.LaMa import LaMa, LaMaArch
    from spandrel.architectures.LaMa.__arch.LaMa import FFCResNetGenerator

    state = {k.replace("generator.model", "model.model"): v for k, v in state.items()}
    try:
        first = state["model.model.1.ffc.convl2l.weight"]
        ngf, in_nc = int(first.shape[0]), int(first.shape[1])
        indices = {int(m.group(1)) for k in state
                   if (m := re.match(r"model\.model\.(\d+)\.", k))}
        blocks = sum(1 for i in indices if f"model.model.{i}.conv1.ffc.convl2l.weight" in state)
        downs = sum(1 for i in indices if i >= 2 and f"model.model.{i}.ffc.convl2l.weight" in state)
        out_nc = int(state[f"model.model.{max(indices)}.weight"].shape[0])
        model = LaMa(in_nc=in_nc, out_nc=out_nc)
        model.model = FFCResNetGenerator(in_nc, out_nc, ngf=ngf, n_downsampling=downs,
                                         n_blocks=blocks)
        model.load_state_dict(state, strict=True)
    except (KeyError, RuntimeError, ValueError, IndexError) as exc:
        raise _corrupt(name, exc) from None
    return MaskedImageModelDescriptor(
        model, state, architecture=LaMaArch(), purpose="Inpainting", tags=[],
        supports_half=False, supports_bfloat16=True, input_channels=in_nc - 1,
        output_channels=out_nc, size_requirements=SizeRequirements(minimum=16, multiple_of=8),
    )


def _corrupt(name: str, exc: Exception) -> SfumatoError:
    detail = " ".join(str(exc).split())[:300] or type(exc).__name__
    return SfumatoError(ErrorCode.CORRUPT_WEIGHTS,
                        f"{name} looks like a LaMa or MAT model but its tensors do not fit "
                        f"({detail}); re-download it")
