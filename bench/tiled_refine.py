"""What tiling costs the diffusion refine of an upscale (`upscale --refine`): what the task
runs, `refine_fitting` (the tile side from free memory, the tile plan, each tile to the
pipeline with its progress and cancel checks, the cross-fade blend, the 8/16-bit result)
against the bare diffusers pipeline called by hand on the same tiles, same steps, strength,
guidance and seeds, with nothing blended. Target: at most 1.1x. Before timing, the run
checks both do the same work: where one tile alone covers a pixel, the task's result is the
bare pipeline's output there, rounded.

The task's CPU pass reuses the memory the pipeline frees (core/device/memory.py); the bare
pipeline is timed both in that same allocator setting (like with like: the tiling's cost)
and with glibc's defaults (what running diffusers by hand costs).

A tiny random-weight SD 1.5 (tests/support/tiny_models.py, native 256²) loaded through the
worker's real model provider, on the CPU, one thread; a 2x2 grid of tiles (448² picture).
The two alternate round by round (bench/rounds.py) and the median of per-round ratios is
printed.

    .venv/bin/python bench/tiled_refine.py [--rounds 5] [--side 448] [--steps 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.support.tiny_models
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
import rounds  # noqa: E402

TARGET_RATIO = 1.1
STRENGTH = 0.3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--side", type=int, default=448, help="picture side, px")
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()

    import torch
    from sfumato.core.config import Settings
    from sfumato.core.device.memory import reuse_freed_memory
    from sfumato.core.diffusion.tiled_refine import RefineSettings, refine_fitting
    from sfumato.core.models.provider import WorkerModels
    from sfumato.core.models.registry import ModelEntry, Registry
    from sfumato.core.models.torchvision_guard import guard_torchvision
    from sfumato.core.task_api import CancelToken

    from tests.support.tiny_models import build_tiny_model

    guard_torchvision()  # as the worker does: an unloadable torchvision breaks diffusers' import
    torch.set_num_threads(1)  # as the tests: steadier on two shared cores
    with tempfile.TemporaryDirectory() as home:
        folder = build_tiny_model("sd15", Path(home) / "models" / "sd15")
        Registry(Path(home)).add(ModelEntry("sd15", "sd15", str(folder), "diffusers"))
        models = WorkerModels(Settings(home=Path(home), endpoint="tcp://127.0.0.1:0"), "cpu")
        pipe = models.load_pipeline(models.entry("sd15", frozenset({"sd15"}), None), "refine")
        rng = np.random.default_rng(0)
        image = rng.integers(0, 256, (args.side, args.side, 4), np.uint8)
        image[..., 3] = 255
        settings = RefineSettings("", STRENGTH, args.steps, 7, None)
        tiles = _tiles_of(pipe, image)

        def tiled() -> np.ndarray:
            refined, _ = refine_fitting(pipe, image, settings, guides=None,
                                        progress=lambda *_: None, cancel=CancelToken())
            return refined

        def bare_defaults() -> None:
            for index, rect in enumerate(tiles):
                _bare_call(pipe, image[rect.slices], settings, settings.seed + index)

        def bare() -> None:  # in the allocator setting the task runs its CPU pass in
            with reuse_freed_memory():
                bare_defaults()

        _check_same_work(pipe, image, tiles, tiled_result=tiled(), settings=settings)
        bare()
        bare_defaults()  # warm all three (the check ran the task)
        race = rounds.alternate({"tiled": tiled, "bare": bare, "defaults": bare_defaults},
                                args.rounds)
    ratios = race.ratios("tiled", "bare")
    print(f"{args.side}² picture, {len(tiles)} tiles of {tiles[0].width}², {args.steps} steps "
          f"at strength {STRENGTH}, tiny SD 1.5 on the CPU; load average "
          f"{rounds.load_average()}:")
    print(f"  refine task : median {race.median('tiled') * 1000:8.1f} ms")
    print(f"  bare pipe   : median {race.median('bare') * 1000:8.1f} ms (same tiles, no blend, "
          "freed memory reused as the task's CPU pass does)")
    print(f"  bare pipe   : median {race.median('defaults') * 1000:8.1f} ms (the same, glibc's "
          "defaults)")
    print(f"  task / bare per round: {rounds.spread(ratios)} (what tiling costs)")
    print(f"  task / bare with glibc's defaults: "
          f"{rounds.spread(race.ratios('tiled', 'defaults'))}")
    verdict = sorted(ratios)[len(ratios) // 2] <= TARGET_RATIO
    print(f"verdict: {'ok' if verdict else 'over'} (target <= {TARGET_RATIO}x)")
    return 0


def _tiles_of(pipe: Any, image: np.ndarray) -> list[Any]:
    """The task's own tile plan for this picture (as refine_tiled makes it at the model's
    native side, which free memory leaves as it is on this machine)."""
    import math

    from sfumato.core.diffusion.pipeline_call import geometry
    from sfumato.core.diffusion.tiled_refine import OVERLAP_SHARE, plan_tiles

    model = geometry(pipe)
    side = int(math.isqrt(model.native_pixels)) // model.multiple * model.multiple
    return plan_tiles(image.shape[1], image.shape[0], side,
                      max(model.multiple, side // OVERLAP_SHARE))


def _bare_call(pipe: Any, crop: np.ndarray, settings: Any, seed: int) -> Any:
    """diffusers by hand: the crop in, the same steps, strength, guidance and seed, numpy
    out."""
    import torch
    from PIL import Image
    from sfumato.core.diffusion.pipeline_call import default_guidance

    return pipe(prompt=settings.prompt, image=Image.fromarray(crop[..., :3], "RGB"),
                strength=settings.strength, num_inference_steps=settings.steps,
                guidance_scale=default_guidance(pipe),
                generator=torch.Generator(device="cpu").manual_seed(seed),
                output_type="np").images[0]


def _check_same_work(pipe: Any, image: np.ndarray, tiles: list[Any], *,
                     tiled_result: np.ndarray, settings: Any) -> None:
    """Like with like: where only one tile covers a pixel, the task's result is the bare
    pipeline's output for that tile, rounded (a bench against less work would flatter us)."""
    covered = np.zeros(image.shape[:2], int)
    for rect in tiles:
        covered[rect.slices] += 1
    for index, rect in enumerate(tiles):
        bare = np.rint(_bare_call(pipe, image[rect.slices], settings, settings.seed + index)
                       * 255)
        alone = covered[rect.slices] == 1
        ours = tiled_result[rect.slices][..., :3].astype(np.float64)
        differs = np.abs(ours - bare)[alone].max()
        if differs > 0:
            raise SystemExit(f"tile {index + 1}: the task's pixels differ from the bare "
                             f"pipeline's by {differs:.0f} levels: not the same work")


if __name__ == "__main__":
    raise SystemExit(main())
