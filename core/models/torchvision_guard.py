"""Keep an unusable torchvision from taking the daemon down, visibly.

PyPI's torchvision is a CUDA build; beside a CPU torch it fails on import ("operator
torchvision::nms does not exist"). transformers and diffusers import it whenever it looks
installed, and spandrel imports it unconditionally, though only two of its architectures
(LaMa, RestoreFormer) name anything from it. So when it cannot be imported we mark it absent
in sys.modules for the whole process (transformers then falls back to its PIL image
processors), give spandrel a stand-in only while spandrel itself imports, and log one warning.
`sfumato doctor` shows the same line.

What those two really use at run time, and what the stand-in gives them:
- LaMa imports `InterpolationMode` and `rotate` for its LearnableSpatialTransformWrapper, which
  spandrel's LaMa never builds (its generator is made with spatial_transform_layers=None), so
  neither is ever called: the enum is enough, and `rotate` refuses, typed, if it ever were.
- RestoreFormer calls `normalize(x, mean, std)` on its input: plain per-channel arithmetic,
  done here in torch exactly as torchvision does it.
So nothing is disabled; object removal (LaMa) works with or without a usable torchvision.
"""

from __future__ import annotations

import enum
import importlib
import logging
import sys
import types
from collections.abc import Sequence
from typing import Any, NoReturn

from sfumato.bridge.protocol import ErrorCode
from sfumato.core.errors import SfumatoError

DISABLED_ARCHITECTURES: tuple[str, ...] = ()  # the stand-in covers LaMa and RestoreFormer
_NAMES = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")


def guard_torchvision() -> str | None:
    """Call before importing spandrel, diffusers or transformers. Returns a one-line warning
    (logged once per process) when torchvision is unusable, None when it works."""
    if _blocked():
        return _warning()
    try:
        importlib.import_module("torchvision.transforms.functional")
        return None
    except (ImportError, RuntimeError, OSError) as exc:
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
    _purge_partial_imports()
    _block()
    warning = f"{_warning()} ({reason})"
    logging.getLogger("sfumato").warning(warning)
    return warning


def prepare_spandrel_import() -> str | None:
    """Make `import spandrel` safe; with torchvision unusable, imports spandrel against the
    stand-in and then hides torchvision again."""
    warning = guard_torchvision()
    if warning is None or "spandrel" in sys.modules:
        return warning
    saved = {name: sys.modules.pop(name) for name in _NAMES if name in sys.modules}
    _install_stand_in()
    try:
        importlib.import_module("spandrel")
    finally:
        sys.modules.update(saved)
    return warning


def spandrel_disabled_architectures() -> list[str]:
    """spandrel architecture ids that cannot run in this process (empty with a real torchvision)."""
    return list(DISABLED_ARCHITECTURES) if _blocked() else []


def torchvision_hint() -> str:
    """What the admin should do to get a working torchvision."""
    return f"pip install the torchvision built for your torch {_torch_version()}"


def _warning() -> str:
    return ("torchvision is unusable, so sfumato stands in for the two functions spandrel "
            f"takes from it (LaMa and RestoreFormer still work); to fix it, {torchvision_hint()}")


def _torch_version() -> str:
    torch = sys.modules.get("torch")
    if torch is not None:
        return str(getattr(torch, "__version__", "?"))
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch")
    except PackageNotFoundError:
        return "?"


def _blocked() -> bool:
    # None in sys.modules: `import torchvision` raises ModuleNotFoundError and find_spec()
    # returns None, so every library treats it as not installed.
    return "torchvision" in sys.modules and sys.modules["torchvision"] is None


def _block() -> None:
    for name in _NAMES:
        sys.modules[name] = None  # type: ignore[assignment]


def _purge_partial_imports() -> None:
    # A failed import can leave half-initialised torchvision modules behind; a later import
    # would find those instead of ours. spandrel's own half-imported submodules go too.
    doomed = [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]
    if "spandrel" not in sys.modules:
        doomed += [n for n in sys.modules if n.startswith("spandrel.")]
    for name in doomed:
        del sys.modules[name]


class InterpolationMode(enum.Enum):
    """Same member names as torchvision's, so attribute access at call sites still parses."""

    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


def _unavailable(*_args: object, **_kwargs: object) -> NoReturn:
    raise SfumatoError(ErrorCode.INTERNAL, "this model calls a torchvision function sfumato "
                       f"has no stand-in for: {torchvision_hint()}")


def _normalize(tensor: Any, mean: Sequence[float], std: Sequence[float],
               inplace: bool = False) -> Any:
    """torchvision.transforms.functional.normalize: (x - mean) / std per channel (dim -3)."""
    import torch

    mean_t = torch.as_tensor(mean, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
    if inplace:
        return tensor.sub_(mean_t).div_(std_t)
    return (tensor - mean_t) / std_t


def _any_other_function(name: str) -> object:
    # Anything else spandrel may reach for fails with the same message, not AttributeError.
    if name.startswith("__"):
        raise AttributeError(name)
    return _unavailable


def _install_stand_in() -> None:
    root = types.ModuleType("torchvision", "sfumato stand-in: the real torchvision is unusable")
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    names = {  # what spandrel imports (LaMa: InterpolationMode, rotate; RestoreFormer: normalize)
        "InterpolationMode": InterpolationMode,
        "rotate": _unavailable,
        "normalize": _normalize,
        "__getattr__": _any_other_function,
    }
    for name, value in names.items():
        setattr(functional, name, value)
    setattr(root, "transforms", transforms)  # noqa: B010 - ModuleType has no such attribute
    setattr(transforms, "functional", functional)  # noqa: B010
    # packages, so `import torchvision.transforms.functional` resolves through sys.modules
    root.__path__ = []
    transforms.__path__ = []
    sys.modules.update({m.__name__: m for m in (root, transforms, functional)})
