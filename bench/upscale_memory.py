"""Peak CPU memory and time per window pixel of each upscaler architecture, the figures the
upscale task's tile planner uses (core/device/memory.py: UPSCALER_BYTES_PER_PIXEL).

Each (model, window) runs in a fresh child process: the model is loaded and warmed on a
small window, then one forward pass over a side x side window; the growth of the process's
peak resident set over that pass, divided by the window's pixels, is the cost per pixel
(fp32, channels-last, as the task runs it). The slope between the two largest windows
leaves out fixed costs.

    .venv/bin/python bench/upscale_memory.py [--models realesrgan-x4plus,...]
        [--sides 128,256,384]
    .venv/bin/python bench/upscale_memory.py --speed [--sides 276,532] [--rounds 3]
        # time per pixel by window size, in alternating rounds (in this process)
    .venv/bin/python bench/upscale_memory.py --malloc [--sides 1044] [--rounds 2]
        # one pass with glibc's defaults against one with freed memory reused (what
        # core/device/memory.py's reuse_freed_memory sets), fresh processes in turns
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import rounds  # noqa: E402
from sfumato.core.models.ncnn_import import ensure_default_upscaler  # noqa: E402
from sfumato.core.models.registry import Registry  # noqa: E402

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    import torch
    from sfumato.core.models.upscaler_loader import input_memory_format, load_upscaler
    model = load_upscaler(__import__("pathlib").Path(sys.argv[1]))
    side = int(sys.argv[2])
    def forward(n):
        x = torch.rand(1, 3, n, n).contiguous(memory_format=input_memory_format(model))
        with torch.inference_mode():
            model(x)
    forward(32)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    forward(side)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"arch": str(model.architecture.id), "grown": peak - before,
                      "seconds": seconds}))
    """
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="realesrgan-x4plus,realesr-animevideov3-x4")
    parser.add_argument("--sides", default="128,256,384", help="window sides, px")
    parser.add_argument("--speed", action="store_true",
                        help="time per window pixel by size instead of memory")
    parser.add_argument("--malloc", action="store_true",
                        help="glibc defaults against freed memory reused, per pass")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sides = [int(s) for s in args.sides.split(",")]
    print(f"load average {rounds.load_average()}")
    if args.malloc:
        with tempfile.TemporaryDirectory() as home:
            for name in args.models.split(","):
                _malloc(name, ensure_default_upscaler(Registry(Path(home)), name).path,
                        sides[-1], args.rounds)
        print(f"load average {rounds.load_average()}")
        return
    if args.speed:
        with tempfile.TemporaryDirectory() as home:
            for name in args.models.split(","):
                _speed(name, Path(ensure_default_upscaler(Registry(Path(home)), name).path),
                       sides, args.rounds)
        print(f"load average {rounds.load_average()}")
        return
    with tempfile.TemporaryDirectory() as home:
        for name in args.models.split(","):
            path = ensure_default_upscaler(Registry(Path(home)), name).path
            figures = []
            for side in sides:
                done = subprocess.run([sys.executable, "-c", CHILD, path, str(side)],
                                      capture_output=True, text=True, check=True)
                figure = json.loads(done.stdout.strip().splitlines()[-1])
                figures.append((side, figure))
                print(f"{name} ({figure['arch']}) {side}² window: peak grew "
                      f"{figure['grown'] / 2**20:.0f} MiB = {figure['grown'] / side**2:.0f} B/px, "
                      f"{figure['seconds']:.2f} s = {figure['seconds'] / side**2 * 1e6:.1f} µs/px",
                      flush=True)
            (a, fa), (b, fb) = figures[-2], figures[-1]
            slope = (fb["grown"] - fa["grown"]) / (b * b - a * a)
            print(f"{name}: {slope:.0f} bytes per window pixel (slope {a}²-{b}²)")
    print(f"load average {rounds.load_average()}")


MALLOC_CHILD = textwrap.dedent(
    """
    import contextlib, json, resource, sys, time
    import torch
    from sfumato.core.device.memory import reuse_freed_memory
    from sfumato.core.models.upscaler_loader import input_memory_format, load_upscaler
    model = load_upscaler(__import__("pathlib").Path(sys.argv[1]))
    side, reuse = int(sys.argv[2]), sys.argv[3] == "reuse"  # "thp": set in the environment
    def forward(n):
        x = torch.rand(1, 3, n, n).contiguous(memory_format=input_memory_format(model))
        with torch.inference_mode():
            model(x)
    with reuse_freed_memory() if reuse else contextlib.nullcontext():
        forward(side)  # the first pass maps the heap in either case
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        forward(side)
        seconds = time.perf_counter() - start
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    print(json.dumps({"seconds": seconds, "faults": faults}))
    """
)


def _malloc(name: str, path: str, side: int, count: int) -> None:
    def run(mode: str) -> dict:
        env = dict(os.environ, THP_MEM_ALLOC_ENABLE="1" if mode == "thp" else "0")
        done = subprocess.run([sys.executable, "-c", MALLOC_CHILD, path, str(side), mode],
                              capture_output=True, text=True, check=True, env=env)
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))

    modes = ["default", "reuse", "thp"]
    ratios: dict[str, list[float]] = {"reuse": [], "thp": []}
    for index in range(count):
        figures = {mode: run(mode) for mode in modes[index % 3:] + modes[:index % 3]}
        for mode in ratios:
            ratios[mode].append(figures["default"]["seconds"] / figures[mode]["seconds"])
        print(f"{name} {side}² second pass: " + ", ".join(
            f"{mode} {figures[mode]['seconds']:.2f} s ({figures[mode]['faults']} page faults)"
            for mode in modes), flush=True)
    for mode, values in ratios.items():
        print(f"{name}: defaults / {mode} time per round {rounds.spread(values)}")


def _speed(name: str, path: Path, sides: list[int], count: int) -> None:
    import torch
    from sfumato.core.models.upscaler_loader import input_memory_format, load_upscaler

    model = load_upscaler(path)

    def forward(side: int) -> None:
        x = torch.rand(1, 3, side, side).contiguous(memory_format=input_memory_format(model))
        with torch.inference_mode():
            model(x)

    forward(32)
    race = rounds.alternate({str(side): (lambda side=side: forward(side)) for side in sides},
                            count)
    first = str(sides[0])
    for side in sides:
        per_pixel = [t / side**2 for t in race.times[str(side)]]
        base = [t / sides[0] ** 2 for t in race.times[first]]
        ratios = [p / b for p, b in zip(per_pixel, base, strict=True)]
        print(f"{name} {side}² window: {race.median(str(side)):.2f} s, "
              f"{sorted(per_pixel)[len(per_pixel) // 2] * 1e6:.1f} µs/px; per pixel vs "
              f"{first}²: {rounds.spread(ratios)}", flush=True)


if __name__ == "__main__":
    main()
