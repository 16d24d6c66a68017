"""Diffusion models already on disk elsewhere: a Hugging Face cache, a ComfyUI or an A1111
install, or a plain folder of diffusers folders and checkpoints. Scanning only reads configs and
safetensors headers; registering what it finds is the admin's step (`sfumato models scan`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sfumato.core.errors import SfumatoError
from sfumato.core.models.checkpoint_header import tensor_shapes
from sfumato.core.models.diffusion_loader import checkpoint_kind, detect_diffusion_kind
from sfumato.core.models.fill_loader import fill_kind_of_keys
from sfumato.core.models.guide_loader import single_file_controlnet
from sfumato.core.models.registry import ModelFormat, ModelKind

# where each tool keeps checkpoints, relative to its install folder
_CHECKPOINT_DIRS = (
    "models/checkpoints",  # ComfyUI
    "models/diffusion_models",  # ComfyUI, transformer-only files such as FLUX
    "models/unet",  # ComfyUI, older name of the above
    "models/Stable-diffusion",  # A1111 / Forge
    "checkpoints",
    "diffusion_models",
    "Stable-diffusion",
)
# where each tool keeps single-file ControlNets
_CONTROLNET_DIRS = (
    "models/controlnet",  # ComfyUI
    "models/ControlNet",  # A1111 / Forge
    "extensions/sd-webui-controlnet/models",  # A1111's ControlNet extension
    "controlnet",
    "ControlNet",
)
# where object-removal fills (LaMa, MAT .safetensors) are kept: ComfyUI's inpaint nodes, and
# IOPaint's torch hub cache (under ~/.cache, or the --model-dir it was given)
_FILL_DIRS = (
    "models/inpaint",  # ComfyUI (comfyui-inpaint-nodes)
    "models/lama",
    "torch/hub/checkpoints",  # IOPaint: ~/.cache or its --model-dir
    "hub/checkpoints",  # the same, scanning ~/.cache/torch
    "inpaint",
    "lama",
)
_PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")  # how IOPaint and others ship fills
_DIFFUSERS_DIRS = ("models/diffusers", "diffusers")
_HF_DIRS = ("hub", "huggingface/hub")
_MAX_DEPTH = 3  # checkpoint folders are often sorted into a level or two of subfolders


@dataclass(frozen=True)
class Candidate:
    """One model found by a scan. Single-file checkpoints (`needs_config`) are registered with
    a local diffusers config folder of the same architecture."""

    name: str
    path: Path
    kind: str
    format: str
    source: str  # "huggingface", "comfyui/a1111" or "folder"

    @property
    def needs_config(self) -> bool:
        return self.format == ModelFormat.SINGLE_FILE.value and \
            self.kind != ModelKind.CONTROLNET.value  # a ControlNet's comes from its base UNet


def scan_model_sources(folder: Path) -> list[Candidate]:
    """Every diffusion model sfumato can serve under `folder`, sorted by name, names unique."""
    folder = Path(folder)
    found: list[Candidate] = []
    if (folder / "model_index.json").is_file():
        found += _diffusers(folder, _slug(folder.name), "folder")
    elif folder.name.startswith("models--"):
        found += _hf_repo(folder)
    else:
        found += _plain_folder(folder)
        for sub in _HF_DIRS:
            found += _hf_cache(folder / sub)
        for sub in _DIFFUSERS_DIRS:
            found += _plain_folder(folder / sub)
        for sub in _CHECKPOINT_DIRS:
            found += _checkpoints(folder / sub, "comfyui/a1111")
        for sub in _CONTROLNET_DIRS:
            found += _checkpoints(folder / sub, "comfyui/a1111")
        for sub in _FILL_DIRS:
            found += _checkpoints(folder / sub, "comfyui/iopaint")
    return _unique(found)


def pickled_fills(folder: Path) -> list[Path]:
    """Pickle-based weight files where removal fills are kept (IOPaint's big-lama.pt, a .pth
    MAT): never loaded, but a scan names them, so the admin learns to fetch .safetensors."""
    folder = Path(folder)
    found: set[Path] = set()
    for sub in _FILL_DIRS:
        place = folder / sub
        if not place.is_dir():
            continue
        for path in place.rglob("*"):
            if path.suffix.lower() in _PICKLE_SUFFIXES and path.is_file() and \
                    len(path.relative_to(place).parts) <= _MAX_DEPTH:
                found.add(path.resolve())
    return sorted(found)


def _plain_folder(folder: Path) -> list[Candidate]:
    if not folder.is_dir():
        return []
    found: list[Candidate] = []
    for child in sorted(folder.iterdir()):
        if child.name.startswith("models--") and child.is_dir():
            found += _hf_repo(child)
        elif child.is_dir() and (child / "model_index.json").is_file():
            found += _diffusers(child, _slug(child.name), "folder")
        elif child.is_file() and child.suffix.lower() == ".safetensors":
            found += _checkpoint(child, "folder")
    return found


def _hf_cache(folder: Path) -> list[Candidate]:
    if not folder.is_dir():
        return []
    found: list[Candidate] = []
    for repo in sorted(folder.glob("models--*")):
        found += _hf_repo(repo)
    return found


def _hf_repo(repo: Path) -> list[Candidate]:
    """models--org--name/snapshots/<revision>: the revision refs/main names, else the newest."""
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return []
    snapshot = None
    ref = repo / "refs" / "main"
    if ref.is_file():
        named = snapshots / ref.read_text().strip()
        snapshot = named if named.is_dir() else None
    if snapshot is None:
        revisions = [p for p in snapshots.iterdir() if p.is_dir()]
        if not revisions:
            return []
        snapshot = max(revisions, key=lambda p: p.stat().st_mtime)
    name = repo.name.removeprefix("models--").split("--")[-1]
    return _diffusers(snapshot, _slug(name), "huggingface")


def _diffusers(folder: Path, name: str, source: str) -> list[Candidate]:
    found = detect_diffusion_kind(folder)
    if found is None:
        return []
    kind, fmt = found
    return [Candidate(name, folder, kind, fmt, source)]


def _checkpoints(folder: Path, source: str) -> list[Candidate]:
    if not folder.is_dir():
        return []
    found: list[Candidate] = []
    for path in sorted(folder.rglob("*.safetensors")):
        if len(path.relative_to(folder).parts) <= _MAX_DEPTH:
            found += _checkpoint(path, source)
    return found


def _checkpoint(path: Path, source: str) -> list[Candidate]:
    try:
        shapes = tensor_shapes(path)
    except SfumatoError:
        return []  # damaged: loading would fail the same way, so it is not offered
    fill = fill_kind_of_keys(frozenset(shapes))  # LaMa or MAT: loads on its own
    if fill is not None:
        return [Candidate(_slug(path.stem), path, fill, ModelFormat.SAFETENSORS.value, source)]
    kind = checkpoint_kind(shapes)
    if kind is None and single_file_controlnet(shapes) is not None:
        kind = ModelKind.CONTROLNET.value  # its config comes from the base model's UNet
    if kind is None:
        return []  # an upscaler, a LoRA, a VAE, or an architecture sfumato does not serve
    return [Candidate(_slug(path.stem), path, kind, ModelFormat.SINGLE_FILE.value, source)]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-") or "model"


def _unique(found: list[Candidate]) -> list[Candidate]:
    seen_paths: set[Path] = set()
    names: dict[str, int] = {}
    result: list[Candidate] = []
    for candidate in sorted(found, key=lambda c: (c.name, str(c.path))):
        resolved = candidate.path.resolve()
        if resolved in seen_paths:
            continue
        seen_paths.add(resolved)
        count = names.get(candidate.name, 0) + 1
        names[candidate.name] = count
        name = candidate.name if count == 1 else f"{candidate.name}-{count}"
        result.append(Candidate(name, candidate.path, candidate.kind, candidate.format,
                                candidate.source))
    return result
