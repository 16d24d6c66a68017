"""bridge/actions.py generate and expand_canvas against the in-memory host and the scripted
client: what is sent, where the result lands, the canvas grown by exactly what was asked."""

from __future__ import annotations

import pytest
from sfumato.bridge import actions
from sfumato.bridge.geometry import Rect
from sfumato.bridge.guides import Control
from sfumato.bridge.protocol import Welcome
from sfumato.bridge.raster import Layout
from sfumato.bridge.recipe import Recipe
from sfumato.bridge.schema import EXPAND

from tests.support.fake_host import FakeHost, pixels
from tests.unit.test_actions_fake_host import FakeClient

pytestmark = pytest.mark.unit


def test_generate_without_a_selection_covers_the_whole_canvas() -> None:
    # a small layer at (30, 20) on a 300x200 canvas: the picture is the canvas's size
    host = FakeHost((100, 80), offset=(30, 20), canvas=(300, 200))
    client = FakeClient(host, rasters=[pixels(300, 200)], info={"offset": [0, 0], "seeds": [9]})
    outcome = actions.generate(host, client, {"prompt": "a kite", "seed": -1}, "tiny")
    assert outcome.ok, outcome.message
    (request,) = client.requests
    assert request["task"] == "generate" and request["params"] == {"prompt": "a kite"}
    (image,) = request["rasters"]
    assert (image.width, image.height) == (300, 200)
    assert ("read_pixels", Rect(-30, -20, 300, 200), Layout.RGBA8) in host.log
    ((_, x, y, name),) = host.layers
    assert (x, y, name) == (0, 0, "sfumato generate (seed 9)")


def test_generate_into_the_selection_sends_its_box_and_places_each_variant() -> None:
    host = FakeHost((400, 300), offset=(20, 12), selection=Rect(100, 50, 40, 30))
    client = FakeClient(host, rasters=[pixels(48, 32), pixels(48, 32)],
                        info={"offset": [4, 3], "seeds": [5, 6]})
    outcome = actions.generate(host, client, {"prompt": "kite", "variants": 2}, "tiny")
    assert outcome.ok and len(outcome.layers) == 2
    image, mask = client.requests[0]["rasters"]
    # generate's reach: grow 0 + feather 16 (2 * 8), no context
    area = Rect(100 - 16, 50 - 16, 40 + 32, 30 + 32)
    assert (image.width, image.height) == (mask.width, mask.height) == (area.width, area.height)
    assert [(x, y) for _, x, y, _ in host.layers] == [(20 + area.x + 4, 12 + area.y + 3)] * 2


@pytest.mark.parametrize(("sides", "sent"), [
    # right only: a strip as wide as expand reaches (feather 32 + context 128)
    ({"right": 64}, Rect(300 - 160, 0, 160, 200)),
    ({"bottom": 20}, Rect(0, 200 - 160, 300, 160)),
    ({"top": 20}, Rect(0, 0, 300, 160)),
    # a side border runs along the whole picture
    ({"left": 10, "bottom": 20}, Rect(0, 0, 300, 200)),
])
def test_expand_sends_what_it_reaches_grows_the_canvas_and_places_the_fill(
        sides: dict[str, int], sent: Rect) -> None:
    host = FakeHost((300, 200), canvas=(300, 200))
    left, top = sides.get("left", 0), sides.get("top", 0)
    right, bottom = sides.get("right", 0), sides.get("bottom", 0)
    fill = pixels(sent.width + left + right, sent.height + top + bottom)
    client = FakeClient(host, rasters=[fill], info={"offset": [-left, -top], "seeds": [1]})
    outcome = actions.expand_canvas(host, client, {"prompt": "sea", **sides}, "inpaint-model")
    assert outcome.ok, outcome.message
    assert EXPAND.reach({}) == 160
    (request,) = client.requests
    assert request["task"] == "expand" and request["params"] == {"prompt": "sea", **sides}
    assert ("read_pixels", sent, Layout.RGBA8) in host.log
    assert host.canvas == (300 + left + right, 200 + top + bottom)  # exactly what was asked
    assert (host.x, host.y) == (left, top)  # the source moved with the canvas, not resized
    assert (host.width, host.height) == (300, 200)
    ((_, x, y, _),) = host.layers
    # the fill's top-left: the sent area's, shifted by the grown left/top, minus the border
    assert (x, y) == (sent.x, sent.y)
    changes = [e[0] for e in host.log if e[0] in ("undo_start", "grow_canvas", "add_layer",
                                                 "undo_end")]
    assert changes == ["undo_start", "grow_canvas", "add_layer", "undo_end"]  # one step


def test_expand_by_nothing_changes_nothing() -> None:
    host = FakeHost((300, 200))
    client = FakeClient(host, rasters=[pixels(1, 1)])
    outcome = actions.expand_canvas(host, client, {"prompt": "sea"}, "m")
    assert not outcome.ok and "at least one side" in outcome.message
    assert client.requests == [] and host.layers == [] and host.canvas == (300, 200)


def test_a_failed_expand_leaves_the_canvas_as_it_was() -> None:
    from sfumato.bridge.client import JobFailed

    host = FakeHost((300, 200))
    client = FakeClient(host, error=JobFailed("wrong_model_kind", "model 'x' is an upscaler "
                                              "model; this task needs a sdxl-inpaint model"))
    outcome = actions.expand_canvas(host, client, {"right": 8}, "x")
    assert not outcome.ok and "sdxl-inpaint" in outcome.message
    assert host.canvas == (300, 200) and host.layers == []
    assert not any(e[0] == "grow_canvas" for e in host.log)


class VersionedClient(FakeClient):
    def hello(self) -> Welcome:
        return Welcome(id="h", daemon_version="9.9")


def test_each_result_layer_keeps_its_recipe_where_the_host_can() -> None:
    host = FakeHost((200, 100), selection=Rect(50, 20, 40, 30), keeps_recipes=True,
                    others={"lines": (pixels(200, 100), 0, 0)})
    client = VersionedClient(host, rasters=[pixels(8, 8), pixels(8, 8)],
                             info={"offset": [0, 0], "seeds": [5, 6], "model": "my-sdxl",
                                   "names": ["a", "b"]})
    outcome = actions.generate(host, client, {"prompt": "kite", "variants": 2, "steps": 9},
                               "my-sdxl", controls=[Control("canny", "lines", 0.8)])
    assert outcome.ok, outcome.message
    first, second = (Recipe.from_json(host.recipes[name]) for name in ("a", "b"))
    assert (first.task, first.model, first.daemon_version) == ("generate", "my-sdxl", "9.9")
    assert (first.seed, second.seed) == (5, 6)
    assert first.params == {"prompt": "kite", "variants": 1, "steps": 9, "seed": 5}
    assert first.guides["controls"][0]["image"] == "lines"  # the layer, not a raster index
    # kept inside the one undo step, right after each layer is made
    order = [e[0] for e in host.log if e[0] in ("undo_start", "add_layer", "keep_recipe",
                                                "undo_end")]
    assert order == ["undo_start", "add_layer", "keep_recipe", "add_layer", "keep_recipe",
                     "undo_end"]


def test_regenerate_sends_the_same_recipe_without_its_seed() -> None:
    host = FakeHost((200, 100), selection=Rect(50, 20, 40, 30), keeps_recipes=True,
                    others={"lines": (pixels(200, 100), 0, 0)})
    client = VersionedClient(host, rasters=[pixels(8, 8)],
                             info={"offset": [0, 0], "seeds": [5], "model": "my-sdxl",
                                   "names": ["a"]})
    actions.generate(host, client, {"prompt": "kite", "steps": 9, "seed": 5}, "my-sdxl",
                     controls=[Control("canny", "lines", 0.8)])
    client.info = {"offset": [0, 0], "seeds": [77], "model": "my-sdxl", "names": ["b"]}
    outcome = actions.regenerate(host, client, host.recipes["a"])
    assert outcome.ok, outcome.message
    first, again = client.requests
    assert again["task"] == "generate" and again["model"] == "my-sdxl"
    # the same settings, controls included; the daemon picks a new seed
    assert {k: v for k, v in first["params"].items() if k != "seed"} == again["params"]
    assert "seed" not in again["params"] and first["params"]["seed"] == 5
    assert Recipe.from_json(host.recipes["b"]).seed == 77


def test_regenerate_refuses_what_is_no_recipe_or_cannot_be_repainted() -> None:
    host = FakeHost((200, 100))
    client = VersionedClient(host, rasters=[pixels(8, 8)])
    assert not actions.regenerate(host, client, "{}").ok
    remove_recipe = Recipe("remove", {"grow": 8}).to_json()  # LaMa: no seed to change
    outcome = actions.regenerate(host, client, remove_recipe)
    assert not outcome.ok and "undo it and run it again" in outcome.message
    assert client.requests == [] and host.layers == []


def test_regenerate_of_an_expand_paints_the_border_again_without_growing_the_canvas() -> None:
    host = FakeHost((300, 200), canvas=(300, 200), keeps_recipes=True)
    sides = {"left": 10, "right": 64}
    client = VersionedClient(host, rasters=[pixels(374, 200)],
                             info={"offset": [-10, 0], "seeds": [1], "names": ["fill"],
                                   "model": "inpaint"})
    assert actions.expand_canvas(host, client, {"prompt": "sea", **sides}, "inpaint").ok
    assert host.canvas == (374, 200) and (host.x, host.y) == (10, 0)
    client.info = {"offset": [-10, 0], "seeds": [2], "names": ["again"], "model": "inpaint"}
    outcome = actions.regenerate(host, client, host.recipes["fill"])
    assert outcome.ok, outcome.message
    assert host.canvas == (374, 200)  # grown once, by exactly what was asked
    assert [e[0] for e in host.log].count("grow_canvas") == 1
    first, again = client.requests
    assert again["task"] == "expand" and again["model"] == "inpaint"
    assert again["params"] == {"prompt": "sea", **sides}  # the daemon picks a new seed
    # the same picture sent, and the new fill lies exactly where the first one does
    assert [(r.width, r.height) for r in again["rasters"]] == [(300, 200)]
    reads = [e[1] for e in host.log if e[0] == "read_pixels"]
    assert reads[0] == reads[1]
    (_, x1, y1, _), (_, x2, y2, _) = host.layers
    assert (x1, y1) == (x2, y2) == (0, 0)
    assert Recipe.from_json(host.recipes["again"]).seed == 2
