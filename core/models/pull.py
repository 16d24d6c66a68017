"""`sfumato models pull ID`: fetch an official upscaler release (or a LaMa / MAT fill for
object removal), keep it as .safetensors.

The .pth is read only through the weights-only loader and re-saved as plain tensors, so the
store never holds a pickle. Needs network access; everything else in sfumato works offline.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from sfumato.bridge.protocol import ErrorCode
from sfumato.core.errors import SfumatoError
from sfumato.core.models.registry import ModelEntry, ModelFormat, ModelKind, Registry

_RELEASES = "https://github.com/xinntao/Real-ESRGAN/releases/download"
KNOWN_MODELS: dict[str, str] = {
    "realesrgan-x4plus": f"{_RELEASES}/v0.1.0/RealESRGAN_x4plus.pth",
    "realesrgan-x4plus-anime": f"{_RELEASES}/v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth",
    "realesr-animevideov3": f"{_RELEASES}/v0.2.5.0/realesr-animevideov3.pth",
}
# object-removal fills, already .safetensors (the authors' own releases are a pickled training
# checkpoint for LaMa and a pickle for MAT): checked to load before they are registered
KNOWN_FILLS: dict[str, str] = {
    "lama": "https://huggingface.co/smartywu/lama-big-safetensors/resolve/main/model.safetensors",
    "mat": "https://huggingface.co/Acly/MAT/resolve/main/MAT_Places512_G_fp16.safetensors",
}
_TIMEOUT_S = 60


def pull_model(model_id: str, registry: Registry) -> ModelEntry:
    """Download `model_id`'s official weights, check they load, register them."""
    if model_id in KNOWN_FILLS:
        return _pull_fill(model_id, KNOWN_FILLS[model_id], registry)
    url = KNOWN_MODELS.get(model_id)
    if url is None:
        known = ", ".join(sorted({**KNOWN_MODELS, **KNOWN_FILLS}))
        raise SfumatoError(
            ErrorCode.UNKNOWN_MODEL,
            f"sfumato cannot pull {model_id!r}; it knows {known}. For other models download "
            "the file yourself and run `sfumato models add NAME PATH`",
        )
    registry.models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=registry.models_dir, prefix=".pull-") as scratch:
        download = Path(scratch) / Path(url).name
        _download(url, download)
        converted = Path(scratch) / f"{model_id}.safetensors"
        _save_as_safetensors(download, converted, url)
        dest = registry.models_dir / converted.name
        os.replace(converted, dest)
    entry = ModelEntry(
        name=model_id,
        kind=ModelKind.UPSCALER.value,
        path=str(dest),
        format=ModelFormat.SAFETENSORS.value,
        source=url,
    )
    registry.add(entry)
    return entry


def _pull_fill(model_id: str, url: str, registry: Registry) -> ModelEntry:
    """A LaMa or MAT .safetensors release: downloaded, loaded once to check it, registered."""
    from sfumato.core.models.fill_loader import fill_kind, load_fill_model

    registry.models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=registry.models_dir, prefix=".pull-") as scratch:
        download = Path(scratch) / f"{model_id}.safetensors"
        _download(url, download)
        kind = fill_kind(load_fill_model(download))  # the architecture, loaded strictly
        dest = registry.models_dir / download.name
        os.replace(download, dest)
    entry = ModelEntry(name=model_id, kind=kind, path=str(dest),
                       format=ModelFormat.SAFETENSORS.value, source=url)
    registry.add(entry)
    return entry


def _download(url: str, dest: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response, dest.open("wb") as out:
            shutil.copyfileobj(response, out, length=1 << 20)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise SfumatoError(
            ErrorCode.NOT_FOUND,
            f"could not download {url} ({exc}); check the network, or download it elsewhere "
            "and run `sfumato models add NAME PATH`",
        ) from None


def _save_as_safetensors(source: Path, dest: Path, url: str) -> None:
    from safetensors.torch import save_file
    from sfumato.core.models.upscaler_loader import load_upscaler
    from sfumato.core.models.weights import load_state_dict

    state = load_state_dict(source)  # weights-only: a tampered download is refused here
    # clone: safetensors refuses tensors that share storage, which some checkpoints do
    save_file(
        {k: v.detach().clone().contiguous() for k, v in state.items()},
        str(dest),
        metadata={"format": "pt", "sfumato.source": url},
    )
    load_upscaler(dest)  # an architecture spandrel knows, loaded strictly
