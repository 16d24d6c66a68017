"""One way to turn a library's load failure into the artist's typed error."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sfumato.bridge.protocol import ErrorCode
from sfumato.core.errors import SfumatoError, error_detail


def load_or_refuse(path: Path, load: Callable[[], Any]) -> Any:
    """`load()`, with what diffusers/transformers raise for a missing file, a shape mismatch
    or a bad config turned into CORRUPT_WEIGHTS naming `path`. Unsafe files were ruled out
    before this is called (weights.py, the folder checks)."""
    try:
        with warnings.catch_warnings():
            # newer diffusers renamed torch_dtype to dtype; the old name works on every version
            warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
            return load()
    except SfumatoError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, AttributeError) as exc:
        raise SfumatoError(
            ErrorCode.CORRUPT_WEIGHTS,
            f"the model at {path} could not be loaded ({error_detail(exc, 300)}); check that it "
            "is complete and of the kind it was registered as",
        ) from None
