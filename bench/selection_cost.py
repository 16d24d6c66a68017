"""Does inpainting cost follow the selection, not the canvas, end to end?

Times what an artist waits for: `bridge.actions.inpaint_selection` from the host's first read
to the new layer, against a real daemon process on a loopback socket running a tiny
random-weight inpainting pipeline (tests/support/tiny_models.py) registered with
`sfumato models add`.
The same 256x256 selection sits in the middle of a 1024x1024 canvas and of a 16384x16384
canvas; the two alternate round by round (bench/rounds.py: so that load from elsewhere on the
machine hits both alike) and the median of the per-round ratios, with their range, is
printed against the target: at most 1.1x.

The host is tests/support/fake_host.py's FakeHost: like a real editor reading tiles, it makes pixels
and the selection mask only for the rectangle asked, at a cost that grows with that
rectangle, and never holds the whole canvas. So a read of the whole layer or mask (1 GiB and
256 MiB at 16384x16384) shows in the times, as it would in GIMP. The pixels read from the host
per run are printed too.

    .venv/bin/python bench/selection_cost.py [--repeats 15] [--kind sdxl-inpaint]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.* (daemon process, fake host, tiny models)
sys.path.insert(0, str(ROOT / "bench"))

import rounds  # noqa: E402
from sfumato.bridge import actions  # noqa: E402
from sfumato.bridge.client import Client  # noqa: E402
from sfumato.bridge.selection import Rect  # noqa: E402

from tests.support.daemon_process import start_daemon  # noqa: E402
from tests.support.fake_host import FakeHost  # noqa: E402

SELECTION = 256
TARGET_RATIO = 1.1
# Tiny pipeline at its native 256 px, 2 steps: the model's share stays small, so any cost
# that grows with the canvas stands out instead of hiding behind denoising time.
PARAMS = {"prompt": "a lamp", "seed": 1, "steps": 2, "resolution": 256}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--big", type=int, default=16384)
    parser.add_argument("--small", type=int, default=1024)
    parser.add_argument("--kind", default="sdxl-inpaint", choices=("sdxl-inpaint",
                                                                   "sd15-inpaint"))
    args = parser.parse_args()
    sides = (args.small, args.big)
    with tempfile.TemporaryDirectory() as tmp:
        daemon = start_daemon(Path(tmp) / "home")
        try:
            _add_tiny_model(args.kind, Path(tmp), daemon.env())
            with daemon.client(timeout_s=120.0) as client:
                timings, pixels_read = _measure(client, sides, args.repeats)
        finally:
            daemon.stop()
    _report(args, timings, pixels_read)
    return 0


def _add_tiny_model(kind: str, tmp: Path, env: dict[str, str]) -> None:
    from sfumato.core.models.torchvision_guard import guard_torchvision

    # An unusable torchvision must look absent before diffusers is imported, as it does in
    # the daemon's worker and in the test suite (tests/conftest.py).
    guard_torchvision()
    from tests.support.tiny_models import build_tiny_model

    folder = build_tiny_model(kind, tmp / f"tiny-{kind}")
    subprocess.run([sys.executable, "-m", "sfumato.core", "models", "add", "tiny", str(folder)],
                   env=env, check=True, capture_output=True)


def _measure(client: Client, sides: tuple[int, ...], repeats: int,
             ) -> tuple[dict[int, list[float]], dict[int, int]]:
    runs = {side: _runner(client, side) for side in sides}
    pixels_read = {side: run()[1] for side, run in runs.items()}  # warm: load, first kernels
    race = rounds.alternate({str(side): run for side, run in runs.items()}, repeats)
    return {side: race.times[str(side)] for side in sides}, pixels_read


def _runner(client: Client, side: int) -> Callable[[], tuple[float, int]]:
    """A function timing one inpaint of the selection on a `side` x `side` canvas; it also
    says how many pixels (layer and mask) it read from the host."""
    start = side // 2 - SELECTION // 2
    selection = Rect(start, start, SELECTION, SELECTION)

    def once() -> tuple[float, int]:
        host = FakeHost((side, side), selection=selection)
        begin = time.perf_counter()
        outcome = actions.inpaint_selection(host, client, PARAMS, "tiny")
        seconds = time.perf_counter() - begin
        if not outcome.ok:
            raise SystemExit(f"inpaint failed on the {side}x{side} canvas: {outcome.message}")
        return seconds, _pixels_read(host.log)

    return once


def _pixels_read(log: list[tuple[Any, ...]]) -> int:
    return sum(entry[1].width * entry[1].height for entry in log
               if entry[0] in ("read_pixels", "read_selection"))


def _report(args: argparse.Namespace, timings: dict[int, list[float]],
            pixels_read: dict[int, int]) -> None:
    best = {side: min(times) for side, times in timings.items()}
    print(f"{SELECTION}x{SELECTION} selection, bridge.actions.inpaint_selection -> real daemon "
          f"(tiny {args.kind}, {PARAMS['steps']} steps, {PARAMS['resolution']} px), "
          f"{args.repeats} alternating rounds; load average {rounds.load_average()}:")
    for side, times in timings.items():
        canvas = f"{side}x{side}"
        print(f"  {canvas:>11} canvas: best {best[side] * 1000:7.1f} ms, median "
              f"{statistics.median(times) * 1000:7.1f} ms, read from host "
              f"{pixels_read[side]:,} px")
    per_round = [big / small for big, small in zip(timings[args.big], timings[args.small],
                                                   strict=True)]
    ratio = statistics.median(per_round)
    print(f"  {args.big}² / {args.small}² per round: {rounds.spread(per_round)}")
    print(f"verdict: the {args.big}² canvas costs {ratio:.3f}x the {args.small}² one for the "
          f"same selection (target <= {TARGET_RATIO}x): "
          f"{'ok' if ratio <= TARGET_RATIO else 'OVER'}")


if __name__ == "__main__":
    raise SystemExit(main())
