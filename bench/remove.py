"""Object removal: does its cost follow the selection, and how does it compare with running
LaMa over the whole canvas (what IOPaint does)?

1. Selection cost. `bridge.actions.remove_object` from the host's first read to the new
   layer, against a real daemon process on a loopback socket running a LaMa registered with
   `sfumato models add`. The same 256x256 selection sits in the middle of a 1024x1024 and of
   an 8192x8192 canvas (tests/support/fake_host.py: pixels are made only for the rectangle asked, as
   an editor reads tiles); the two alternate round by round (bench/rounds.py) and the median
   of the per-round ratios is printed against the target: at most 1.1x.
2. Against whole-canvas LaMa. The same selection on a `--canvas` square: `remove` end to end
   (daemon, bridge, the selection's crop) against the same LaMa network run by hand on the
   whole canvas, as IOPaint's LaMa does with its "Original" strategy (image and mask in, the
   canvas out). With `--iopaint PYTHON` (a Python with IOPaint 1.6 installed, e.g.
   `python3 -m venv /tmp/iop && /tmp/iop/bin/pip install torch==2.13.0 iopaint==1.6.0`),
   IOPaint's own LaMa runs instead, in that Python, from a TorchScript of the same network:
   `--iopaint-strategy` crop (IOPaint's default), original or resize. IOPaint is timed from
   numpy arrays to numpy array (no HTTP, no PNG); remove from the host's read to the layer.

--lama tiny (default) is a narrow random LaMa, so a cost that grows with the canvas stands
out; --lama big is Big-LaMa's real shape (51 M parameters, random weights), for times an
artist would see. No weights are downloaded.

    .venv/bin/python bench/remove.py [--repeats 9] [--lama tiny|big] [--canvas 2048]
        [--iopaint PYTHON [--iopaint-strategy crop|original|resize]] [--only selection|versus]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.* (daemon process, fake host, tiny LaMa)
sys.path.insert(0, str(ROOT / "bench"))

import rounds  # noqa: E402
from sfumato.bridge import actions  # noqa: E402
from sfumato.bridge.client import Client  # noqa: E402
from sfumato.bridge.selection import Rect  # noqa: E402

from tests.support.daemon_process import start_daemon  # noqa: E402
from tests.support.fake_host import FakeHost  # noqa: E402
from tests.support.tiny_fill import build_big_lama, build_tiny_lama  # noqa: E402

SELECTION = 256
TARGET_RATIO = 1.1
PARAMS = {"grow": 8, "feather": 8, "context": 128}  # the task's defaults, spelled out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--small", type=int, default=1024)
    parser.add_argument("--big", type=int, default=8192)
    parser.add_argument("--canvas", type=int, default=2048,
                        help="canvas side for the whole-canvas LaMa comparison")
    parser.add_argument("--lama", choices=("tiny", "big"), default="tiny")
    parser.add_argument("--iopaint", metavar="PYTHON",
                        help="a Python with IOPaint installed: compare with its LaMa")
    parser.add_argument("--iopaint-strategy", choices=("crop", "original", "resize"),
                        default="crop", help="IOPaint's HD strategy (its default: crop, "
                        "the mask's box plus 128 px once the canvas passes 800 px)")
    parser.add_argument("--only", choices=("selection", "versus"),
                        help="run one of the two parts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "lama.safetensors"
        (build_big_lama if args.lama == "big" else build_tiny_lama)(weights)
        daemon = start_daemon(Path(tmp) / "home")
        try:
            subprocess.run([sys.executable, "-m", "sfumato.core", "models", "add", "lama",
                            str(weights)], env=daemon.env(), check=True, capture_output=True)
            with daemon.client(timeout_s=600.0) as client:
                if args.only != "versus":
                    sides = (args.small, args.big)
                    runs = {str(side): _remove_on(client, side) for side in sides}
                    read = {name: run()[1] for name, run in runs.items()}  # warm: load
                    race = rounds.alternate(runs, args.repeats)
                    _report_selection(args, race, read)
                if args.only == "selection":
                    return 0
                whole = _whole_canvas(args, weights, Path(tmp))
                mine = _remove_on(client, args.canvas)
                mine()
                versus = rounds.alternate({"remove": mine, "whole": whole}, args.repeats)
                _report_whole(args, versus)
        finally:
            daemon.stop()
    return 0


def _remove_on(client: Client, side: int) -> Callable[[], tuple[float, int]]:
    """One timed remove of the middle selection on a `side` x `side` canvas; also says how
    many pixels (layer and mask) it read from the host."""
    start = side // 2 - SELECTION // 2
    selection = Rect(start, start, SELECTION, SELECTION)

    def once() -> tuple[float, int]:
        host = FakeHost((side, side), selection=selection)
        began = time.perf_counter()
        outcome = actions.remove_object(host, client, PARAMS, "lama")
        seconds = time.perf_counter() - began
        if not outcome.ok:
            raise SystemExit(f"remove failed on the {side}x{side} canvas: {outcome.message}")
        read = sum(e[1].width * e[1].height for e in host.log
                   if e[0] in ("read_pixels", "read_selection"))
        return seconds, read

    return once


def _whole_canvas(args: argparse.Namespace, weights: Path, tmp: Path) -> Callable[[], Any]:
    """LaMa over the whole canvas, in this process (or in IOPaint's, with --iopaint)."""
    import numpy as np

    side = args.canvas
    y, x = np.mgrid[0:side, 0:side]
    image = np.stack([x % 256, y % 256, (x + y) % 256], axis=-1).astype(np.uint8)
    mask = np.zeros((side, side), np.uint8)
    start = side // 2 - SELECTION // 2
    mask[start : start + SELECTION, start : start + SELECTION] = 255
    if args.iopaint:
        return _iopaint(args.iopaint, args.iopaint_strategy, weights, image, mask, tmp)
    import torch
    from sfumato.core.models.fill_loader import load_fill_model

    model = load_fill_model(weights)
    tensor = torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32) / 255)[None]
    holes = torch.from_numpy((mask > 0).astype(np.float32))[None, None]

    def once() -> None:
        with torch.inference_mode():
            model(tensor, holes)

    once()  # warm
    return once


def _iopaint(python: str, strategy: str, weights: Path, image: Any, mask: Any,
             tmp: Path) -> Callable[[], Any]:
    """IOPaint's LaMa (its ModelManager "lama", HD strategy `strategy`) in its own Python, fed
    a TorchScript of the same network; each call is one inpaint of the canvas there."""
    import numpy as np
    import torch
    from sfumato.core.models.fill_loader import load_fill_model

    # IOPaint loads LaMa only as TorchScript, from its torch hub cache
    script = tmp / "torch" / "hub" / "checkpoints" / "big-lama.pt"
    script.parent.mkdir(parents=True, exist_ok=True)
    model = load_fill_model(weights).model.eval()
    side = image.shape[0]
    torch.jit.trace(model, (torch.rand(1, 3, 64, 64), torch.zeros(1, 1, 64, 64))).save(
        str(script))
    np.save(tmp / "image.npy", image)
    np.save(tmp / "mask.npy", mask)
    server = textwrap.dedent(f"""
        import sys, time, numpy as np, os
        os.environ["LAMA_MODEL_URL"] = {str(script)!r}
        os.environ["TORCH_HOME"] = {str(tmp / "torch")!r}
        # the torchvision here cannot load beside the CPU torch; IOPaint's LaMa needs none
        for name in ("torchvision", "torchvision.transforms",
                     "torchvision.transforms.functional"):
            sys.modules[name] = None
        from iopaint.model_manager import ModelManager
        from iopaint.schema import InpaintRequest, HDStrategy
        manager = ModelManager(name="lama", device="cpu")
        image, mask = np.load({str(tmp / 'image.npy')!r}), np.load({str(tmp / 'mask.npy')!r})
        request = InpaintRequest(hd_strategy=HDStrategy.{strategy.upper()})
        manager(image, mask, request)  # warm
        for line in sys.stdin:
            began = time.perf_counter()
            manager(image, mask, request)
            print(time.perf_counter() - began, flush=True)
    """)
    process = subprocess.Popen([python, "-c", server], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)

    def once() -> None:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write("go\n")
        process.stdin.flush()
        if not process.stdout.readline():
            raise SystemExit(f"IOPaint's LaMa on {side}x{side} failed")

    once()
    return once


def _report_selection(args: argparse.Namespace, race: rounds.Rounds,
                      read: dict[str, int]) -> None:
    print(f"{SELECTION}x{SELECTION} selection, bridge.actions.remove_object -> real daemon "
          f"({args.lama} LaMa), {race.count} alternating rounds; load average "
          f"{rounds.load_average()}:")
    for name, times in race.times.items():
        print(f"  {name:>6}² canvas: best {min(times) * 1000:8.1f} ms, median "
              f"{statistics.median(times) * 1000:8.1f} ms, read from host {read[name]:,} px")
    ratios = race.ratios(str(args.big), str(args.small))
    ratio = statistics.median(ratios)
    print(f"  {args.big}² / {args.small}² per round: {rounds.spread(ratios)}")
    print(f"verdict: the {args.big}² canvas costs {ratio:.3f}x the {args.small}² one "
          f"(target <= {TARGET_RATIO}x): {'ok' if ratio <= TARGET_RATIO else 'OVER'}")


def _report_whole(args: argparse.Namespace, race: rounds.Rounds) -> None:
    who = f"IOPaint's LaMa (HD strategy {args.iopaint_strategy})" if args.iopaint else \
        "the same LaMa network over the whole canvas, in-process"
    print(f"\n{args.canvas}² canvas, same selection: remove end to end vs {who}, "
          f"{race.count} alternating rounds:")
    for name, times in race.times.items():
        print(f"  {name:>6}: median {statistics.median(times) * 1000:9.1f} ms")
    ratios = race.ratios("whole", "remove")
    print(f"  whole / remove per round: {rounds.spread(ratios)} "
          f"({'remove is faster' if statistics.median(ratios) >= 1 else 'remove is SLOWER'})")


if __name__ == "__main__":
    raise SystemExit(main())
