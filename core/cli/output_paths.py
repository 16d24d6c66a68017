"""Where `sfumato upscale` writes: never over a file without --overwrite, never one file
for several inputs, and never where a later run over the same folder would take the
results for inputs (a folder's results go to a sibling folder; earlier results beside
their source are skipped)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sfumato.bridge.protocol import ErrorCode
from sfumato.core.errors import SfumatoError
from sfumato.core.pixels.image_files import IMAGE_SUFFIXES

FOLDER_SUFFIX = "-upscaled"
_RESULT_NAME = re.compile(r"^(?P<stem>.+)-x\d+(\.\d+)?$")


@dataclass(frozen=True)
class Source:
    path: Path
    folder: Path | None = None  # the input folder it was found in


def expand(inputs: list[Path]) -> list[Source]:
    """The image files named, and those in the folders named (earlier results left out)."""
    found: list[Source] = []
    for item in inputs:
        if not item.is_dir():
            found.append(Source(item))
            continue
        images = sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        stems = {p.stem for p in images}
        found.extend(Source(p, item) for p in images if not _earlier_result(p, stems))
    return found


def _earlier_result(path: Path, stems: set[str]) -> bool:
    """`photo-x4.png` beside `photo.jpg`: what an earlier run wrote, not an input."""
    match = _RESULT_NAME.match(path.stem)
    return path.suffix.lower() == ".png" and match is not None and match["stem"] in stems


def check_output(output: Path | None, count: int) -> None:
    """Refuse `-o FILE` for several inputs before anything runs."""
    if output is None or count <= 1:
        return
    if output.suffix.lower() in IMAGE_SUFFIXES or output.is_file():
        raise SfumatoError(
            ErrorCode.BAD_PARAMS,
            f"-o {output} names one file, but there are {count} input images: give a folder "
            f"(-o {output.with_suffix('')}/) or one input at a time",
        )


def target(source: Source, output: Path | None, count: int, scale: float) -> Path:
    name = f"{source.path.stem}-x{scale:g}.png"
    if output is None:
        if source.folder is None:
            return source.path.with_name(name)
        folder = source.folder.resolve()
        return folder.with_name(folder.name + FOLDER_SUFFIX) / name
    if count == 1 and output.suffix.lower() in IMAGE_SUFFIXES:
        return output
    return output / name


def refuse_existing(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise SfumatoError(ErrorCode.BAD_PARAMS, f"{path} exists (an earlier run's?): pass "
                           "--overwrite to replace it, or -o somewhere else")
