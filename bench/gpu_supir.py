"""SUPIR at full size with random weights: 1024² -> 2048², the published 50 steps, on the
lent GPU. Reports the whole restore (encode, 50 tiled steps, decode), peak GPU memory, and the
cost of one denoiser call (control encoder + UNet with connectors, guidance pair) against the
bare SDXL UNet on the same tile in the same run: SUPIR's overhead as a ratio.

    .venv/bin/python bench/gpu_supir.py [--dtype bf16] [--steps 50] [--repeat 1]
    .venv/bin/python bench/gpu_supir.py --dry-run   # CPU, tiny configs: imports, builds, runs
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import gpu_harness as harness  # noqa: E402
from sfumato.core.diffusion.supir.sampler import PUBLISHED_STEPS  # noqa: E402


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="SUPIR 1024² -> 2048², random weights")
    parser.add_argument("--dry-run", action="store_true",
                        help="tiny configs on the CPU: checks the script builds and runs")
    parser.add_argument("--steps", type=int, default=PUBLISHED_STEPS)
    parser.add_argument("--repeat", type=int, default=1, help="timed restores after the first")
    parser.add_argument("--dtype", default="bf16", choices=("bf16", "fp16", "fp32"))
    parser.add_argument("--side", type=int, default=0, help="input side (0: 1024, dry: 32)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import torch
    from sfumato.core.models.torchvision_guard import guard_torchvision

    guard_torchvision()
    args = arguments(argv)
    if args.dry_run:
        device, dtype, steps, side = "cpu", torch.float32, 2, args.side or 32
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device: run this on the GPU machine, or with --dry-run")
        device, steps, side = "cuda", args.steps, args.side or 1024
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    from sfumato.core.diffusion.supir.pipeline import SupirPipeline

    started = time.perf_counter()
    base = _base(args.dry_run, device, dtype)
    pipe = SupirPipeline.random(base)
    built_s = time.perf_counter() - started
    params = sum(p.numel() for m in (pipe.control, pipe.connectors) for p in m.parameters())

    image = torch.rand(1, 3, 2 * side, 2 * side) * 2 - 1  # the 2x bicubic input SUPIR gets
    rows = [("built (random weights)", f"{built_s:.1f} s; control + connectors "
             f"{params / 1e9:.2f} B parameters")]
    rows += _denoiser_ratio(pipe, device, dtype, tile=16 if args.dry_run else 128)
    rows += _restore(pipe, image, steps, args.repeat, device)
    what = "tiny configs (--dry-run: checks the script)" if args.dry_run else \
        "full size, random weights"
    harness.print_table(f"SUPIR, {what}, {side}² -> {2 * side}², {steps} steps, "
                        f"{dtype}; {harness.machine(device)}", rows)
    if args.dry_run:
        print("verdict: --dry-run completed end to end (no figure: tiny configs on the CPU)")
    else:
        print(f"verdict: {rows[-1][1] if args.repeat else rows[2][1]} for {2 * side}²; "
              f"SUPIR's denoiser call {rows[1][1].rsplit(': ', 1)[-1]} the bare SDXL UNet's")
    return 0


def _base(dry: bool, device: str, dtype: Any) -> Any:
    """An SDXL pipeline: the tests' tiny one (dry), else SDXL's published shapes."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline

    if dry:
        from tests.support.tiny_models import build_tiny_model

        folder = build_tiny_model("sdxl", Path(tempfile.mkdtemp()) / "sdxl")
        return StableDiffusionXLImg2ImgPipeline.from_pretrained(folder).to(device)
    from full_size_models import sdxl_modules

    from tests.support.tiny_models import clip_tokenizer

    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            parts = sdxl_modules(in_channels=4)  # the base model SUPIR restores with
    finally:
        torch.set_default_dtype(default)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
                                       beta_schedule="scaled_linear")
    return StableDiffusionXLImg2ImgPipeline(**parts, tokenizer=clip_tokenizer(),
                                            tokenizer_2=clip_tokenizer(), scheduler=scheduler)


def _denoiser_ratio(pipe: Any, device: str, dtype: Any, tile: int) -> list[tuple[str, str]]:
    """One guided denoiser call on one tile: SUPIR's (control encoder + UNet with
    connectors) against the bare SDXL UNet, alternating, medians of 5."""
    import torch
    from sfumato.core.diffusion.supir.restoring_unet import restoring_unet

    unet = pipe.base.unet
    width = unet.config.cross_attention_dim
    pooled_width = unet.config.projection_class_embeddings_input_dim - \
        6 * unet.config.addition_time_embed_dim
    latent = torch.randn(2, 4, tile, tile, device=device, dtype=dtype)
    context = torch.randn(2, 77, width, device=device, dtype=dtype)
    pooled = torch.randn(2, pooled_width, device=device, dtype=dtype)
    ids = torch.tensor([[1024, 1024, 0, 0, 1024, 1024]] * 2, device=device, dtype=dtype)
    steps = torch.tensor([500, 500], device=device)

    @torch.inference_mode()
    def supir() -> None:
        features = pipe.control(latent, latent, steps, context, pooled, ids)
        restoring_unet(unet, pipe.connectors, latent, steps, context, pooled, ids, features, 1.0)

    @torch.inference_mode()
    def bare() -> None:
        unet(latent, steps, encoder_hidden_states=context,
             added_cond_kwargs={"text_embeds": pooled, "time_ids": ids})

    supir(), bare()  # warm-up
    ours, theirs = harness.alternating(supir, bare, 5, device)
    return [(f"denoiser call, {tile * 8}² tile x2 (guidance)", f"SUPIR {ours * 1e3:.0f} ms, "
             f"bare SDXL UNet {theirs * 1e3:.0f} ms: {ours / theirs:.2f}x")]


def _restore(pipe: Any, image: Any, steps: int, repeat: int, device: str
             ) -> list[tuple[str, str]]:
    from sfumato.core.diffusion.supir.sampler import SamplerSettings

    settings = SamplerSettings(steps=steps)
    harness.reset_peak(device)
    times = []
    for _ in range(1 + repeat):
        harness.synchronise(device)
        start = time.perf_counter()
        out = pipe(image, "a harbour at dusk", settings, 1, lambda done, total: None)
        harness.synchronise(device)
        times.append(time.perf_counter() - start)
    side = out.shape[-1]
    rows = [(f"restore {side}², first", f"{times[0]:.1f} s"),
            ("peak GPU memory", harness.peak_gib(device))]
    if repeat:
        median = statistics.median(times[1:])
        rows.append((f"restore {side}², median of {repeat}",
                     f"{median:.1f} s = {median / steps * 1e3:.0f} ms a step"))
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
