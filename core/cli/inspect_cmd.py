"""`sfumato inspect FILE`: the recipe a sfumato output keeps (task, model, prompt, seed, every
setting), to read or to paint it again with the same settings."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.recipe import RECIPE_KEY, Recipe
from sfumato.core.errors import SfumatoError


def register(verbs: argparse._SubParsersAction) -> None:
    text = "print the recipe (task, model, prompt, seed, settings) a sfumato PNG keeps"
    cmd = verbs.add_parser("inspect", help=text, description=text.capitalize() + ".")
    cmd.add_argument("file", type=Path)
    cmd.add_argument("--json", action="store_true", help="the recipe as JSON, for scripts")
    cmd.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    recipe = read_recipe(args.file)
    print(json.dumps(json.loads(recipe.to_json()), indent=1) if args.json else recipe.describe())
    return 0


def read_recipe(path: Path) -> Recipe:
    from sfumato.core.pixels.png_text import read_text

    if not path.is_file():
        raise SfumatoError(ErrorCode.BAD_PARAMS, f"{path} does not exist")
    text = read_text(path).get(RECIPE_KEY)
    if text is None:
        raise SfumatoError(ErrorCode.BAD_PARAMS, f"{path} keeps no sfumato recipe: only PNG "
                           "files written by sfumato generate, expand, edit, inpaint and "
                           "refine carry one")
    return Recipe.from_json(text)


def keep_recipe(path: Path, recipe: Recipe) -> None:
    """Write `recipe` into the output `path` when it is a PNG (other formats keep none)."""
    from sfumato.core.pixels.png_text import add_text

    if path.suffix.lower() == ".png":
        add_text(path, RECIPE_KEY, recipe.to_json())
