"""What a .safetensors file holds (tensor names and shapes), read from its header only.

Opening the header also validates the file: safetensors refuses a damaged header and a file
shorter than its header says, so a truncated download is caught before any loading starts.
"""

from __future__ import annotations

from pathlib import Path

from sfumato.bridge.protocol import ErrorCode
from sfumato.core.errors import SfumatoError, error_detail


def tensor_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Every tensor's name and shape in `path`; CORRUPT_WEIGHTS when the file is damaged."""
    from safetensors import safe_open

    if not path.is_file():
        raise SfumatoError(
            ErrorCode.CORRUPT_WEIGHTS,
            f"weights file {path} is missing; restore it or re-register the model",
        )
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except Exception as exc:  # SafetensorError for a bad header or a short file, OSError
        raise corrupt_weights(path, exc) from None


def corrupt_weights(path: Path, exc: BaseException) -> SfumatoError:
    """CORRUPT_WEIGHTS for a weights file a library could not read, quoting its error."""
    return SfumatoError(
        ErrorCode.CORRUPT_WEIGHTS,
        f"weights file {path} is damaged or truncated ({error_detail(exc)}); "
        "re-download or re-import it",
    )
