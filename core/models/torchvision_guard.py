"""Let spandrel import when torchvision is missing or broken.

spandrel imports `torchvision.transforms.functional` at import time, but only two of its
architectures (LaMa, RestoreFormer) ever call it. A torchvision built for another torch (PyPI's
CUDA wheel beside a CPU torch fails with "operator torchvision::nms does not exist") would
otherwise take every upscaler down with it. We put a stand-in in its place whose functions
fail loudly, say so in the log, and let the loader refuse those two architectures up front.
"""

from __future__ import annotations

import enum
import importlib
import logging
import sys
import types
from typing import NoReturn

from sfumato.bridge.protocol import ErrorCode

from ..errors import SfumatoError

DISABLED_ARCHITECTURES = ("LaMa", "RestoreFormer")
_MARK = "__sfumato_stand_in__"


def prepare_spandrel_import() -> str | None:
    """Make `import spandrel` safe. Returns a one-line warning when the stand-in is in use
    (logged once, when it is installed), None when the real torchvision works."""
    if _stand_in_active():
        return _warning()
    try:
        importlib.import_module("torchvision.transforms.functional")
        return None
    except (ImportError, RuntimeError, OSError) as exc:
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
    _purge_partial_imports()
    _install_stand_in()
    warning = f"{_warning()} ({reason})"
    logging.getLogger("sfumato").warning(warning)
    return warning


def spandrel_disabled_architectures() -> list[str]:
    """spandrel architecture ids that cannot run in this process (empty with a real torchvision)."""
    return list(DISABLED_ARCHITECTURES) if _stand_in_active() else []


def torchvision_hint() -> str:
    """What the admin should do to get LaMa and RestoreFormer working."""
    return (
        "LaMa and RestoreFormer need a torchvision built for your torch "
        f"(pip install torchvision matching torch {_torch_version()})"
    )


def _warning() -> str:
    return f"torchvision is unusable: {torchvision_hint()}; other upscalers work"


def _torch_version() -> str:
    torch = sys.modules.get("torch")
    if torch is not None:
        return str(getattr(torch, "__version__", "?"))
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch")
    except PackageNotFoundError:
        return "?"


def _stand_in_active() -> bool:
    return getattr(sys.modules.get("torchvision"), _MARK, False) is True


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
    raise SfumatoError(ErrorCode.INTERNAL, torchvision_hint())


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
        "normalize": _unavailable,
        "__getattr__": _any_other_function,
    }
    for name, value in names.items():
        setattr(functional, name, value)
    setattr(root, "transforms", transforms)  # noqa: B010 - ModuleType has no such attribute
    setattr(transforms, "functional", functional)  # noqa: B010
    for module in (root, transforms, functional):
        setattr(module, _MARK, True)
    # packages, so `import torchvision.transforms.functional` resolves through sys.modules
    root.__path__ = []
    transforms.__path__ = []
    sys.modules.update({m.__name__: m for m in (root, transforms, functional)})
