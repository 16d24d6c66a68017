"""The recipe kept with a result (bridge/recipe.py) and its PNG text chunk
(core/pixels/png_text.py): what is written is what is read back, by us and by Pillow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sfumato.bridge.errors import SfumatoError
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.recipe import RECIPE_KEY, Recipe, recipes
from sfumato.bridge.schema import ResultInfo
from sfumato.core.cli import main
from sfumato.core.cli.inspect_cmd import keep_recipe
from sfumato.core.pixels.png_text import add_text, read_text

pytestmark = pytest.mark.unit

SENT = {"prompt": "a lighthouse, dusk", "negative_prompt": "blur", "steps": 20,
        "variants": 2, "controls": [{"kind": "canny", "image": "auto", "scale": 0.6}]}


def test_one_recipe_per_variant_each_with_its_own_seed() -> None:
    info = ResultInfo(seeds=(41, 42), model="my-sdxl")
    first, second = recipes("generate", SENT, info, 2, "0.1.0")
    assert (first.seed, second.seed) == (41, 42)
    assert first.params == {"prompt": "a lighthouse, dusk", "negative_prompt": "blur",
                            "steps": 20, "variants": 1, "seed": 41}
    assert first.model == "my-sdxl" and first.daemon_version == "0.1.0"
    assert first.guides == {"controls": SENT["controls"]}
    again = Recipe.from_json(second.to_json())
    assert again == second
    # Regenerate: the same settings, the seed left to the daemon
    assert again.again() == {k: v for k, v in second.params.items() if k != "seed"}


@pytest.mark.parametrize(("text", "code"), [
    ("not json", ErrorCode.BAD_PARAMS),
    ('{"task": "generate"}', ErrorCode.BAD_PARAMS),
    ('{"task": "paint-by-numbers", "params": {}}', ErrorCode.UNKNOWN_TASK),
])
def test_what_is_no_recipe_is_refused_saying_so(text: str, code: ErrorCode) -> None:
    with pytest.raises(SfumatoError) as caught:
        Recipe.from_json(text)
    assert caught.value.code is code


def test_a_png_keeps_the_recipe_and_its_pixels(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    pixels = np.arange(24 * 16 * 4, dtype=np.uint8).reshape(16, 24, 4)
    path = tmp_path / "out.png"
    Image.fromarray(pixels, "RGBA").save(path)
    (recipe,) = recipes("expand", {"prompt": "più mare", "right": 64}, ResultInfo(seeds=(7,)),
                        1)
    keep_recipe(path, recipe)
    keep_recipe(tmp_path / "out.jpg", recipe)  # not a PNG: nothing kept, nothing written
    assert not (tmp_path / "out.jpg").exists()
    assert read_text(path)[RECIPE_KEY] == recipe.to_json()
    with Image.open(path) as image:  # any PNG reader sees it too
        assert json.loads(image.text[RECIPE_KEY])["params"]["prompt"] == "più mare"
        assert np.array_equal(np.asarray(image), pixels)
    assert main(["inspect", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "expand with the default model" in shown and "seed: 7" in shown
    assert main(["inspect", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["params"]["right"] == 64


def test_inspect_says_when_a_file_keeps_no_recipe(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(path)
    add_text(path, "Comment", "hello")
    assert read_text(path) == {"Comment": "hello"}
    assert main(["inspect", str(path)]) == 1
    assert "keeps no sfumato recipe" in capsys.readouterr().err

