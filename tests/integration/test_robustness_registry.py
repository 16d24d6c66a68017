"""The model registry is written by separate processes (models add / scan / import-ncnn /
pull, the worker's first-use import): none loses another's entry, and a full disk leaves a
typed message and no temporary file."""

from __future__ import annotations

import json
import multiprocessing
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sfumato.core.models.registry import ModelEntry, Registry

pytestmark = pytest.mark.integration

WRITERS = 16
ADDS = 5


def _add_many(home: str, writer: int, start: multiprocessing.synchronize.Barrier) -> None:
    registry = Registry(Path(home))
    start.wait()
    for i in range(ADDS):
        registry.add(ModelEntry(f"m{writer}-{i}", "upscaler", f"/models/{writer}-{i}.pth", "pth"))


def test_concurrent_adds_lose_nothing(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    start = context.Barrier(WRITERS)
    writers = [context.Process(target=_add_many, args=(str(tmp_path), n, start))
               for n in range(WRITERS)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(60)
        assert process.exitcode == 0
    names = {entry.name for entry in Registry(tmp_path).entries()}
    missing = {f"m{w}-{i}" for w in range(WRITERS) for i in range(ADDS)} - names
    assert not missing, f"{len(missing)} of {WRITERS * ADDS} entries lost"


WRITE_WITH_NO_ROOM = """
import sys
from pathlib import Path
from sfumato.core.errors import SfumatoError
from sfumato.core.models.registry import ModelEntry, Registry
try:
    Registry(Path(sys.argv[1])).add(ModelEntry("big", "upscaler", "/m/" + "x" * 4000, "pth"))
except SfumatoError as exc:
    print(exc.code.value, exc.message)
"""


def _no_room() -> None:
    """The child may write files of at most 1 KiB: writing more fails as on a full disk."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, not a signal that kills
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))


def test_no_room_on_disk_is_a_typed_error_that_leaves_no_temporary_file(
    tmp_path: Path,
) -> None:
    registry = Registry(tmp_path)
    registry.add(ModelEntry("kept", "upscaler", "/m/kept.pth", "pth"))
    before = registry.file.read_bytes()
    out = subprocess.run([sys.executable, "-c", WRITE_WITH_NO_ROOM, str(tmp_path)],
                         preexec_fn=_no_room, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    code, _, message = out.stdout.strip().partition(" ")
    assert code == "resource_exhausted", out.stdout + out.stderr
    assert "nothing was changed" in message and "free some space" in message
    assert registry.file.read_bytes() == before
    assert json.loads(before)["models"][0]["name"] == "kept"
    leftovers = [p.name for p in registry.models_dir.iterdir() if p.name.startswith(".registry-")]
    assert not leftovers, leftovers
