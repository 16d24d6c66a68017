"""How much real context each upscaler architecture needs around a tile: the test photo
upscaled whole and in 2x2 tiles with each context width, the largest difference in 8-bit
levels (the task promises at most 1) and how many pixels differ. The task's CONTEXT table
(core/tasks/upscale.py) comes from this.

    .venv/bin/python bench/upscale_context.py [--models realesrgan-x4plus,...]
        [--contexts 8,16,24,32,48,64,96]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import rounds  # noqa: E402
from sfumato.bridge.raster import Layout  # noqa: E402
from sfumato.core.models.ncnn_import import ensure_default_upscaler  # noqa: E402
from sfumato.core.models.registry import ModelEntry, Registry  # noqa: E402
from sfumato.core.models.upscaler_loader import load_upscaler  # noqa: E402
from sfumato.core.pixels.arrays import array_to_raster, raster_to_array  # noqa: E402
from sfumato.core.task_api import TaskContext  # noqa: E402
from sfumato.core.tasks import upscale  # noqa: E402


class _Preloaded:
    def __init__(self, entry: ModelEntry, model: Any) -> None:
        self.entry_, self.model = entry, model

    def entry(self, model_id: str | None, kinds: frozenset[str], default: str | None
              ) -> ModelEntry:
        return self.entry_

    def load(self, entry: ModelEntry) -> Any:
        return self.model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="realesrgan-x4plus,realesr-animevideov3-x4")
    parser.add_argument("--contexts", default="8,16,24,32,48,64,96")
    args = parser.parse_args()
    rgb = np.asarray(Image.open(ROOT / "tests" / "data" / "photo.png").convert("RGB"))
    height, width = rgb.shape[:2]
    rgba = np.concatenate([rgb, np.full((height, width, 1), 255, np.uint8)], axis=2)
    print(f"photo {width}x{height}, 2x2 tiles; load average {rounds.load_average()}")
    with tempfile.TemporaryDirectory() as home:
        for name in args.models.split(","):
            entry = ensure_default_upscaler(Registry(Path(home)), name)
            model = load_upscaler(Path(entry.path))
            arch = str(model.architecture.id)

            def run(rgba: np.ndarray = rgba, entry: ModelEntry = entry, model: Any = model,
                    **params: Any) -> np.ndarray:
                ctx = TaskContext(params=params, rasters=[array_to_raster(rgba, Layout.RGBA8)],
                                  model_id=entry.name, models=_Preloaded(entry, model))
                return raster_to_array(upscale.run(ctx).rasters[0]).astype(int)

            whole = run()
            saved = dict(upscale.CONTEXT)
            try:
                for context in (int(c) for c in args.contexts.split(",")):
                    upscale.CONTEXT[arch] = context
                    tiled = run(tile=max(height, width) // 2 + upscale.OVERLAP)
                    diff = np.abs(whole - tiled)
                    print(f"{name} ({arch}) context {context:3d} px: max {diff.max()}/255, "
                          f"{np.count_nonzero(diff)} values differ", flush=True)
            finally:
                upscale.CONTEXT.clear()
                upscale.CONTEXT.update(saved)


if __name__ == "__main__":
    main()
