"""Does inpainting cost follow the selection, not the canvas?

Runs the real inpaint task (imaging crop path + a tiny SDXL-inpaint pipeline loaded through the
real loader) on the same 256x256 selection on a 1024x1024 canvas and on a 16384x16384 canvas,
and prints the ratio of the best times. Target: at most 1.1x.

    .venv/bin/python bench/selection_cost.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

SELECTION = 256
TARGET_RATIO = 1.1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--big", type=int, default=16384)
    parser.add_argument("--small", type=int, default=1024)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.tiny_models

    import torch

    torch.set_num_threads(1)  # tiny models: threads only add contention
    with tempfile.TemporaryDirectory() as home:
        provider = _tiny_provider(Path(home))
        runs = {side: _runner(provider, side) for side in (args.small, args.big)}
        timings: dict[int, list[float]] = {side: [] for side in runs}
        for run in runs.values():
            run()  # warm: load the pipeline, first-call kernels
        for _ in range(args.repeats):  # interleaved, so drift on a shared machine hits both
            for side, run in runs.items():
                timings[side].append(run())
    small, big = min(timings[args.small]), min(timings[args.big])
    ratio = big / small
    print(f"{SELECTION}x{SELECTION} selection, inpaint (tiny SDXL-inpaint, 2 steps, 256 px), "
          f"best of {args.repeats}:")
    print(f"  {args.small}x{args.small} canvas: {small * 1000:8.1f} ms")
    print(f"  {args.big}x{args.big} canvas: {big * 1000:8.1f} ms")
    print(f"  ratio {ratio:.3f}x (target <= {TARGET_RATIO}x): "
          f"{'ok' if ratio <= TARGET_RATIO else 'OVER'}")
    return 0


def _tiny_provider(home: Path) -> Any:
    from sfumato.core.config import Settings
    from sfumato.core.models.provider import WorkerModels
    from sfumato.core.models.registry import ModelEntry, Registry

    from tests.tiny_models import build_tiny_model

    folder = build_tiny_model("sdxl-inpaint", home / "models" / "sdxl-inpaint")
    Registry(home).add(ModelEntry("tiny", "sdxl-inpaint", str(folder), "diffusers"))
    return WorkerModels(Settings(home=home, endpoint="tcp://127.0.0.1:0"), "cpu")


def _runner(provider: Any, side: int) -> Callable[[], float]:
    """A function timing one inpaint of the selection on a `side` x `side` canvas."""
    from sfumato.bridge.raster import Layout
    from sfumato.core.raster_arrays import array_to_raster
    from sfumato.core.task_api import TaskContext
    from sfumato.core.tasks import inpaint

    canvas = np.full((side, side, 4), 200, np.uint8)  # touch every page, as a real layer would
    mask = np.full((side, side), 0, np.uint8)
    start = side // 2 - SELECTION // 2
    mask[start : start + SELECTION, start : start + SELECTION] = 255
    rasters = [array_to_raster(canvas, Layout.RGBA8), array_to_raster(mask, Layout.GRAY8)]
    params = {"prompt": "a lamp", "seed": 1, "steps": 2, "resolution": 256}

    def once() -> float:
        begin = time.perf_counter()
        inpaint.run(TaskContext(params=params, rasters=rasters, model_id="tiny",
                                models=provider))
        return time.perf_counter() - begin

    return once


if __name__ == "__main__":
    raise SystemExit(main())
