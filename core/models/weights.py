"""Reading weight files without ever running code from them.

`.safetensors` is plain data. `.pth`-style files are pickles; they go only through torch's
weights-only unpickler, which refuses anything but tensors and plain containers. A file that
needs more than that is refused with a message to convert it, never unpickled in full.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from sfumato.bridge.protocol import ErrorCode
from sfumato.core.errors import SfumatoError, error_detail
from sfumato.core.models.checkpoint_header import corrupt_weights

PICKLE_SUFFIXES = frozenset({".pth", ".pt", ".ckpt", ".bin"})
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model")
_ZIP_MAGIC = b"PK\x03\x04"


def load_state_dict(path: Path, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The tensors in `path`, on the CPU, with common wrappers ("params_ema", ...) removed.

    `allow_pickle` admits legacy (pre-zip) torch files, still through the weights-only
    unpickler; nothing here ever unpickles in full.
    """
    path = Path(path)
    if not path.is_file():
        raise SfumatoError(
            ErrorCode.CORRUPT_WEIGHTS,
            f"weights file {path} is missing; re-download or re-import the model",
        )
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        raw: Any = _load_safetensors(path)
    elif suffix in PICKLE_SUFFIXES:
        raw = _load_torch_file(path, allow_pickle)
    else:
        raise SfumatoError(
            ErrorCode.CORRUPT_WEIGHTS,
            f"{path.name}: unknown weights format {suffix!r}; use .safetensors or .pth",
        )
    return _tensors_only(_unwrap(raw), path)


def read_metadata(path: Path) -> dict[str, str]:
    """The `__metadata__` strings of a .safetensors file ({} for other formats)."""
    if Path(path).suffix.lower() != ".safetensors":
        return {}
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception as exc:  # safetensors raises its own error types and OSError
        raise corrupt_weights(Path(path), exc) from None


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # SafetensorError for a bad header, OSError for short reads
        raise corrupt_weights(path, exc) from None


def _load_torch_file(path: Path, allow_pickle: bool) -> Any:
    with path.open("rb") as handle:
        is_zip = handle.read(4) == _ZIP_MAGIC
    if not is_zip and not allow_pickle:
        raise _unsafe(path, "it is a plain pickle, not a torch zip archive")
    import pickle

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's weights-only unpickler refused an object it would have had to construct
        raise _unsafe(path, error_detail(exc)) from None
    except (RuntimeError, EOFError, ValueError, OSError, pickle.PickleError) as exc:
        if not is_zip:
            raise _unsafe(path, "it is not a torch weights file") from None
        raise corrupt_weights(path, exc) from None


def _unwrap(raw: Any) -> Any:
    # Training checkpoints nest the weights ({"params_ema": {...}}); some nest twice.
    while isinstance(raw, dict):
        inner = next((raw[k] for k in WRAPPER_KEYS if isinstance(raw.get(k), dict)), None)
        if inner is None:
            break
        raw = inner
    return raw


def _tensors_only(raw: Any, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(raw, dict):
        raise SfumatoError(
            ErrorCode.CORRUPT_WEIGHTS,
            f"{path.name} holds a {type(raw).__name__}, not a state dict of tensors",
        )
    tensors = {str(k): v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise SfumatoError(ErrorCode.CORRUPT_WEIGHTS, f"{path.name} holds no tensors")
    prefix = "module."  # left by DataParallel training
    if all(k.startswith(prefix) for k in tensors):
        tensors = {k[len(prefix) :]: v for k, v in tensors.items()}
    return tensors


def _unsafe(path: Path, why: str) -> SfumatoError:
    return SfumatoError(
        ErrorCode.UNSAFE_WEIGHTS,
        f"{path.name} needs full unpickling, which can run code hidden in the file ({why}); "
        "sfumato never does that. Convert it to .safetensors on a machine where you trust it, "
        "or use the model's .safetensors release",
    )
