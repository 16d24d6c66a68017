"""The model registry: ids -> local sources, kept as JSON in the model store.

Requests name models by id only; paths live here, written by the admin's `sfumato models`
commands. Re-read on every lookup, so models added while the daemon runs are seen at once.
Every change (models add / scan / import-ncnn / pull, the worker's first-use import) reads,
edits and writes the file under one exclusive lock, so concurrent writers never lose each
other's entries.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from sfumato.bridge.protocol import ErrorCode
from sfumato.core.errors import SfumatoError


class ModelKind(str, Enum):
    UPSCALER = "upscaler"
    SUPIR = "supir"  # SUPIR's control adapter and encoder, run over a registered SDXL base
    SDXL_INPAINT = "sdxl-inpaint"
    SDXL = "sdxl"
    SD15_INPAINT = "sd15-inpaint"
    SD15 = "sd15"
    FLUX_FILL = "flux-fill"
    FLUX = "flux"
    # edit by instruction (core/tasks/edit.py)
    INSTRUCT_PIX2PIX = "instruct-pix2pix"
    SDXL_INSTRUCT_PIX2PIX = "sdxl-instruct-pix2pix"
    FLUX_KONTEXT = "flux-kontext"
    QWEN_IMAGE_EDIT = "qwen-image-edit"
    QWEN_IMAGE_EDIT_PLUS = "qwen-image-edit-plus"
    FLUX2_KLEIN = "flux2-klein"
    # guides: they steer a diffusion model's run (core/guidance.py)
    CONTROLNET = "controlnet"
    T2I_ADAPTER = "t2i-adapter"
    IP_ADAPTER = "ip-adapter"
    IMAGE_ENCODER = "image-encoder"  # the CLIP vision tower IP-Adapters read images with
    # preprocessors with weights (core/preprocessors.py)
    DEPTH_ESTIMATOR = "depth-estimator"
    POSE_ESTIMATOR = "pose-estimator"  # ViTPose (COCO body keypoints)
    # object removal fills (spandrel's masked-image models; core/models/fill_loader.py)
    LAMA = "lama"
    MAT = "mat"
    # segmentation (core/models/segmenter_loader.py): SAM, SAM 2.1, SAM 3; VitMatte
    SEGMENTER = "segmenter"
    MATTING = "matting"


class ModelFormat(str, Enum):
    SAFETENSORS = "safetensors"  # one weights file (upscalers)
    PTH = "pth"  # a torch zip, loaded only through the weights-only unpickler
    DIFFUSERS = "diffusers"  # a diffusers folder with model_index.json
    SINGLE_FILE = "single_file"  # one .safetensors checkpoint plus a local config folder
    TRANSFORMERS = "transformers"  # a transformers model folder (config.json + safetensors)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str
    path: str
    format: str
    config: str | None = None
    source: str = "local"

    def describe(self) -> dict[str, Any]:
        return {"id": self.name, "kind": self.kind, "format": self.format, "source": self.source}


def require_kind(entry: ModelEntry, kinds: frozenset[str]) -> ModelEntry:
    """`entry`, if it is of one of `kinds`; else a WRONG_MODEL_KIND error naming both."""
    if entry.kind not in kinds:
        wanted = " or ".join(sorted(kinds))
        raise SfumatoError(
            ErrorCode.WRONG_MODEL_KIND,
            f"model {entry.name!r} is a {entry.kind} model; this task needs a {wanted} model",
        )
    return entry


class Registry:
    def __init__(self, home: Path) -> None:
        self.models_dir = home / "models"
        self.file = self.models_dir / "registry.json"

    def entries(self) -> list[ModelEntry]:
        if not self.file.exists():
            return []
        try:
            raw = json.loads(self.file.read_text())
            return [ModelEntry(**item) for item in raw.get("models", [])]
        except (OSError, ValueError, TypeError) as exc:
            raise SfumatoError(
                ErrorCode.INTERNAL,
                f"the model registry {self.file} cannot be read ({exc}); fix or remove it",
            ) from None

    def find(self, name: str) -> ModelEntry | None:
        return next((e for e in self.entries() if e.name == name), None)

    def get(self, name: str) -> ModelEntry:
        entry = self.find(name)
        if entry is None:
            known = ", ".join(e.name for e in self.entries()) or "none yet"
            raise SfumatoError(
                ErrorCode.UNKNOWN_MODEL,
                f"no model named {name!r} (registered: {known}); "
                "add one with `sfumato models add NAME PATH`",
            )
        return entry

    def add(self, entry: ModelEntry) -> None:
        self._change(lambda entries: [e for e in entries if e.name != entry.name] + [entry])

    def remove(self, name: str) -> bool:
        removed = []

        def without(entries: list[ModelEntry]) -> list[ModelEntry]:
            kept = [e for e in entries if e.name != name]
            removed.append(len(kept) != len(entries))
            return kept

        self._change(without)
        return removed[0]

    def _change(self, edit: Callable[[list[ModelEntry]], list[ModelEntry]]) -> None:
        with self._locked():
            self._write(edit(self.entries()))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The registry's write lock (a lock file beside it; released if the holder dies)."""
        try:
            self.models_dir.mkdir(parents=True, exist_ok=True)
            handle = os.open(self.models_dir / ".registry.lock",
                             os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise _write_error(self.models_dir, exc) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            os.close(handle)  # closing the descriptor releases the lock

    def _write(self, entries: list[ModelEntry]) -> None:
        body = json.dumps({"models": [dataclasses.asdict(e) for e in entries]}, indent=2)
        # write-then-rename: a crash mid-write never leaves a half registry behind
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(dir=self.models_dir, prefix=".registry-")
            with os.fdopen(fd, "w") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.file)
        except OSError as exc:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            raise _write_error(self.file, exc) from None


def _write_error(path: Path, exc: OSError) -> SfumatoError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return SfumatoError(ErrorCode.RESOURCE_EXHAUSTED,
                            f"no room to write {path} ({exc.strerror}); nothing was "
                            "changed: free some space and run the command again")
    return SfumatoError(ErrorCode.INTERNAL, f"cannot write {path} ({exc.strerror}); nothing "
                        "was changed: check that folder's owner and permissions")
