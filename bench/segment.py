"""Segmentation: is a warm `segment` call through the daemon as fast as calling the model in
transformers directly, and does a second prompt on the same layer skip the image encoder?

A 4096x4096 RGBA layer and one box prompt. A SAM (SamModel) of the real working geometry
(1024 px input, 16 px patches, 256-channel prompt encoder and mask decoder) but a small random
ViT (--vit-width, --vit-layers), saved with save_pretrained (safetensors), registered with
`sfumato models add` and served by a real daemon process on a loopback socket. Contenders, in
alternating rounds (bench/rounds.py), each on the same layer and box:

- daemon, new layer: `Client.run("segment")` end to end (layer out over the socket, the
  worker's resize, encoder, decoder, the mask at 4096x4096 back), each call on a new layer
  version (a block of pixels changed), so the encoder runs every time;
- daemon, same layer: the same call on an unchanged layer: the embeddings come from the cache;
- transformers: SamProcessor (images + input_boxes) -> SamModel -> post_process_masks to
  the 4096x4096 mask, in this process: what a script calling transformers does;
- transformers, model only: the same from ready pixel_values (no resize), the floor.

    .venv/bin/python bench/segment.py [--repeats 7] [--side 4096] [--vit-width 192]
        [--vit-layers 4]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.support (the daemon process)
sys.path.insert(0, str(ROOT / "bench"))

import rounds  # noqa: E402
from sfumato.bridge.raster import Layout  # noqa: E402

from tests.support.daemon_process import start_daemon  # noqa: E402

TARGET = 1.1  # daemon overhead over the bare model call


def build_sam(dest: Path, width: int, layers: int) -> Path:
    from sfumato.core.models.torchvision_guard import guard_torchvision

    guard_torchvision()
    import torch
    from transformers import SamConfig, SamModel

    torch.manual_seed(0)
    config = SamConfig(vision_config={
        "hidden_size": width, "num_hidden_layers": layers, "num_attention_heads": 4,
        "global_attn_indexes": list(range(1, layers, 2)), "mlp_dim": width * 4})
    SamModel(config).eval().save_pretrained(dest, safe_serialization=True)
    return dest


def make_layer(side: int) -> Any:
    import numpy as np

    y, x = np.mgrid[0:side, 0:side]
    layer = np.empty((side, side, 4), np.uint8)
    layer[..., 0], layer[..., 1] = x % 251, y % 241
    layer[..., 2], layer[..., 3] = (x + y) % 256, 255
    layer[side // 4: side // 2, side // 4: side // 2, :3] = (220, 30, 30)
    return layer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--side", type=int, default=4096)
    parser.add_argument("--vit-width", type=int, default=192)
    parser.add_argument("--vit-layers", type=int, default=4)
    args = parser.parse_args()
    side = args.side
    box = [side / 5, side / 5, side * 2 / 5, side * 2 / 5]
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_sam(Path(tmp) / "sam", args.vit_width, args.vit_layers)
        daemon = start_daemon(Path(tmp) / "home")
        try:
            subprocess.run([sys.executable, "-m", "sfumato.core", "models", "add", "sam",
                            str(folder)], env=daemon.env(), check=True, capture_output=True)
            with daemon.client(timeout_s=600.0) as client:
                contenders = {**_daemon(client, side, box), **_bare(folder, side, box)}
                for run in contenders.values():
                    run()  # warm: load, first encode
                race = rounds.alternate(contenders, args.repeats)
        finally:
            daemon.stop()
    _report(args, race)
    return 0


def _daemon(client: Any, side: int, box: list[float]) -> dict[str, Callable[[], Any]]:
    from sfumato.core.pixels.arrays import array_to_raster

    layer = make_layer(side)
    same = array_to_raster(layer, Layout.RGBA8)
    version = [0]

    def new_layer() -> None:
        version[0] += 1  # a new layer version: a stroke the encoder must see
        layer[:64, :64, 0] = version[0] % 256
        _check(client.run("segment", {"box": box}, [array_to_raster(layer, Layout.RGBA8)],
                          "sam"), side)

    def same_layer() -> None:
        _check(client.run("segment", {"box": box}, [same], "sam"), side)

    return {"daemon, new layer": new_layer, "daemon, same layer": same_layer}


def _check(outcome: Any, side: int) -> None:
    (mask,) = outcome.rasters
    if (mask.width, mask.height) != (side, side):
        raise SystemExit(f"the mask is {mask.width}x{mask.height}, not the layer's size")


def _bare(folder: Path, side: int, box: list[float]) -> dict[str, Callable[[], Any]]:
    from sfumato.core.models.torchvision_guard import guard_torchvision

    guard_torchvision()
    import torch
    from PIL import Image
    from transformers import SamImageProcessor, SamModel, SamProcessor

    model = SamModel.from_pretrained(folder, local_files_only=True, use_safetensors=True).eval()
    processor = SamProcessor(SamImageProcessor())
    image = Image.fromarray(make_layer(side)[..., :3])
    corners = [[[box[0], box[1], box[0] + box[2], box[1] + box[3]]]]
    ready = processor(images=image, input_boxes=corners, return_tensors="pt")

    def masks(inputs: Any) -> Any:
        with torch.inference_mode():
            out = model(**{k: v for k, v in inputs.items()
                           if k in ("pixel_values", "input_boxes")}, multimask_output=False)
        return processor.post_process_masks(out.pred_masks, inputs["original_sizes"],
                                            inputs["reshaped_input_sizes"])[0]

    def whole() -> None:
        masks(processor(images=image, input_boxes=corners, return_tensors="pt"))

    def model_only() -> None:
        masks(ready)

    return {"transformers": whole, "transformers, model only": model_only}


def _report(args: argparse.Namespace, race: rounds.Rounds) -> None:
    print(f"segment, {args.side}x{args.side} rgba8 layer, one box; SAM at 1024 px with a "
          f"{args.vit_width}-wide {args.vit_layers}-layer ViT (random weights); "
          f"{race.count} alternating rounds; load average {rounds.load_average()}")
    for name in race.times:
        print(f"  {name:28s} median {race.median(name) * 1000:8.1f} ms")
    pairs = (("daemon, new layer", "transformers", f"daemon overhead (target <= {TARGET}x)"),
             ("daemon, new layer", "transformers, model only", "over the model-only floor"),
             ("daemon, new layer", "daemon, same layer", "first / second call on a layer"))
    for numerator, denominator, what in pairs:
        ratios = race.ratios(numerator, denominator)
        print(f"  {numerator} / {denominator}: {rounds.spread(ratios)}: {what}")


if __name__ == "__main__":
    raise SystemExit(main())
