"""The files a CLI job with variants writes: the composite per variant (`-2`, `-3`... after
the first), optionally the bare result layer, each with its recipe. Shared by `generate`,
`expand`, `edit`, `inpaint` and `refine`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sfumato.bridge.raster import Layout, Raster
from sfumato.bridge.recipe import Recipe
from sfumato.core.cli.inspect_cmd import keep_recipe
from sfumato.core.cli.output_paths import refuse_existing
from sfumato.core.pixels.image_files import ImageInfo, write_image

LAYER_OUT_HELP = "also write just the RGBA result layer (its offset is printed)"


def add_result_layer_flags(cmd: argparse.ArgumentParser,
                           layer_help: str = LAYER_OUT_HELP) -> None:
    """--layer-out and --overwrite, as every verb that writes a result layer takes them."""
    cmd.add_argument("--layer-out", type=Path, help=layer_help)
    cmd.add_argument("--overwrite", action="store_true",
                     help="replace output files that exist (default: refuse)")


def variant_path(base: Path, index: int) -> Path:
    """`base` for the first variant, base-2, base-3... for the others."""
    return base if index == 0 else base.with_name(f"{base.stem}-{index + 1}{base.suffix}")


def refuse_existing_variants(output: Path, layer_out: Path | None, variants: int,
                             overwrite: bool) -> None:
    """Before any work: every file the job would write, refused if it exists (unless
    `overwrite`)."""
    for base in filter(None, (output, layer_out)):
        for index in range(variants):
            refuse_existing(variant_path(base, index), overwrite)


def write_variants(background: Any, layers: Sequence[Raster], offset: tuple[int, int],
                   layout: Layout, kept: Sequence[Recipe], output: Path,
                   layer_out: Path | None, like: ImageInfo | None, overwrite: bool) -> None:
    """Each result layer composited over `background` ((H, W, 4) array) at `offset`, written
    to its variant of `output` (and the bare layer to `layer_out`), each with its recipe."""
    from sfumato.core.pixels.arrays import array_to_raster, raster_to_array
    from sfumato.core.pixels.compose import composite_over

    for index, layer in enumerate(layers):
        picture = composite_over(background, raster_to_array(layer), offset)
        out = variant_path(output, index)
        write_image(out, array_to_raster(picture, layout), like=like, overwrite=overwrite)
        if layer_out is not None:
            write_image(variant_path(layer_out, index), layer, overwrite=overwrite)
            keep_recipe(variant_path(layer_out, index), kept[index])
        keep_recipe(out, kept[index])
        print(f"wrote {out}")
