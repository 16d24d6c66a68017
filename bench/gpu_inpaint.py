"""The inpainting GPU benchmark behind gpu_sdxl_inpaint.py and gpu_flux_fill.py: the bare
diffusers pipeline (loaded by the daemon's own loader, called directly) against the same
job end to end through a real daemon, on a full-size random-weight model at 1024².
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import gpu_harness as harness  # noqa: E402
from sfumato.bridge.raster import Layout, Raster  # noqa: E402

PROMPT = "a brass lamp on a wooden table, soft window light"


def run(kind: str, steps: int, target_s: float, reference: str) -> int:
    args = harness.arguments(f"{kind} inpaint 1024², bare pipeline vs daemon", steps)
    device = harness.device_for(args)
    side = args.side or (256 if args.tiny else 1024)
    steps = min(args.steps, 3) if args.tiny else args.steps
    from sfumato.core.models.torchvision_guard import guard_torchvision

    guard_torchvision()
    folder = _model_folder(kind, args, device)
    layer, mask = _inputs(side)

    bare = _bare(kind, folder, device, args, layer, mask, side, steps)
    with tempfile.TemporaryDirectory() as home:
        daemon = harness.start_with_model(Path(home) / "home", "bench", folder, args)
        try:
            with daemon.client(timeout_s=1800.0) as client:
                params = {"prompt": PROMPT, "steps": steps, "seed": 1, "resolution": side}
                rasters = [Raster(side, side, Layout.RGBA8, layer.tobytes()),
                           Raster(side, side, Layout.GRAY8, mask.tobytes())]
                figures = harness.measure_daemon(client, "inpaint", params, rasters, "bench",
                                                 args.repeat, cancel_at=max(1, steps // 3))
        finally:
            daemon.stop()

    ratio = figures.median_s / bare["median_s"]
    rows = [
        ("bare pipeline, first call (load excluded)", f"{bare['first_s']:.2f} s"),
        (f"bare pipeline, median of {args.repeat}", f"{bare['median_s']:.2f} s"),
        ("through the daemon, first job (load + warm-up)", f"{figures.first_s:.2f} s"),
        (f"through the daemon, median of {args.repeat}", f"{figures.median_s:.2f} s"),
        ("daemon / bare", f"{ratio:.3f}x (target <= 1.1x)"),
        ("peak GPU memory (bare pipeline)", bare["peak"]),
        ("warm submit -> first step", f"{figures.dequeue_to_first_step_s * 1e3:.0f} ms"),
        ("cancel -> cancelled", figures.cancel_text("step")),
    ]
    if args.compile:
        rows.append(("compile time (first call - median)",
                     f"{bare['first_s'] - bare['median_s']:.1f} s"))
    what = "tiny model (--tiny: checks the script)" if args.tiny else "full size, random weights"
    harness.print_table(
        f"{kind}, {what}, {side}x{side}, {steps} steps, dtype {args.dtype}, "
        f"compile {args.compile}; {harness.machine(device)}", rows)
    if args.tiny:
        print("verdict: --tiny run completed end to end (no figure: tiny model on the CPU)")
        return 0
    fast = figures.median_s <= target_s
    print(f"verdict: daemon {figures.median_s:.2f} s end to end ({ratio:.2f}x bare; "
          f"target <= {target_s} s and <= 1.1x): "
          f"{'ok' if fast and ratio <= 1.1 else 'OVER'}; reference {reference}")
    return 0


def _model_folder(kind: str, args: Any, device: str) -> Path:
    if args.tiny:
        from tests.support.tiny_models import build_tiny_model

        return build_tiny_model(kind, Path(tempfile.mkdtemp()) / f"tiny-{kind}")
    from full_size_models import build_full_size

    return build_full_size(kind, args.work / kind, device)


def _inputs(side: int) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    photo = Image.open(ROOT / "tests" / "data" / "photo.png").convert("RGBA")
    layer = np.ascontiguousarray(np.asarray(photo.resize((side, side))))
    mask = np.full((side, side), 255, np.uint8)  # the whole layer: the model's full size
    return layer, mask


def _bare(kind: str, folder: Path, device: str, args: Any, layer: np.ndarray,
          mask: np.ndarray, side: int, steps: int) -> dict[str, Any]:
    import torch
    from PIL import Image
    from sfumato.core.device.speed_options import SpeedOptions
    from sfumato.core.diffusion.pipeline_call import default_guidance
    from sfumato.core.models.diffusion_loader import load_pipeline
    from sfumato.core.models.registry import ModelEntry

    options = SpeedOptions(dtype=args.dtype, compile=args.compile, home=args.work)
    entry = ModelEntry(name="bench", kind=kind, path=str(folder), format="diffusers")
    held = [load_pipeline(entry, "inpaint", device, {}, options)]
    kwargs = {
        "prompt": PROMPT,
        "image": Image.fromarray(layer[:, :, :3]),
        "mask_image": Image.fromarray(mask, "L"),
        "height": side, "width": side, "num_inference_steps": steps,
        "guidance_scale": default_guidance(held[0]), "output_type": "np",
    }

    def once() -> None:
        held[0](**kwargs, generator=torch.Generator("cpu").manual_seed(1))

    harness.reset_peak(device)
    first, median = harness.seconds(once, args.repeat, device)
    figures = {"first_s": first, "median_s": median, "peak": harness.peak_gib(device)}
    held.clear()
    harness.release(device)  # the daemon's worker needs the memory next
    return figures
