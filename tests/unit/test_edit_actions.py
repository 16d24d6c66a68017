"""bridge/actions.py edit against the in-memory host and the scripted client: what is sent
(the selection's box plus what edit reaches, or the whole layer), where the result lands, the
recipe kept, and Regenerate of an edit."""

from __future__ import annotations

import pytest
from sfumato.bridge import actions
from sfumato.bridge.geometry import Rect
from sfumato.bridge.protocol import Welcome
from sfumato.bridge.raster import Layout
from sfumato.bridge.recipe import Recipe
from sfumato.bridge.schema import EDIT

from tests.support.fake_host import FakeHost, pixels
from tests.unit.test_actions_fake_host import FakeClient

pytestmark = pytest.mark.unit


class VersionedClient(FakeClient):
    def hello(self) -> Welcome:
        return Welcome(id="h", daemon_version="9.9")


def test_edit_without_a_selection_sends_the_whole_layer_and_lays_the_result_on_it() -> None:
    host = FakeHost((120, 80), offset=(30, 20), canvas=(300, 200))
    client = FakeClient(host, rasters=[pixels(120, 80)], info={"offset": [0, 0], "seeds": [9]})
    outcome = actions.edit(host, client, {"instruction": "make it night", "seed": -1},
                           "kontext")
    assert outcome.ok, outcome.message
    (request,) = client.requests
    assert request["task"] == "edit" and request["model"] == "kontext"
    assert request["params"] == {"instruction": "make it night"}  # seed -1: absent
    (image,) = request["rasters"]  # the layer only, not the canvas (as refine)
    assert (image.width, image.height) == (120, 80)
    ((_, x, y, name),) = host.layers
    assert (x, y, name) == (30, 20, "sfumato edit (seed 9)")


def test_edit_of_a_selection_sends_its_box_and_what_edit_reaches_and_places_each_variant(
        ) -> None:
    host = FakeHost((400, 300), offset=(20, 12), selection=Rect(100, 50, 41, 31))
    client = FakeClient(host, rasters=[pixels(48, 32), pixels(48, 32)],
                        info={"offset": [5, 3], "seeds": [5, 6]})
    outcome = actions.edit(host, client, {"instruction": "remove the hat", "variants": 2},
                           "ip2p")
    assert outcome.ok and len(outcome.layers) == 2
    image, mask = client.requests[0]["rasters"]
    reach = EDIT.reach({})  # feather 16 spreads 16, context 64
    assert reach == 16 + 64
    area = Rect(100, 50, 41, 31).grown(reach).clamped(Rect(0, 0, 400, 300))
    assert (image.width, image.height) == (mask.width, mask.height) == (area.width, area.height)
    assert ("read_pixels", area, Layout.RGBA8) in host.log
    assert [(x, y) for _, x, y, _ in host.layers] == [(20 + area.x + 5, 12 + area.y + 3)] * 2


def test_an_edit_keeps_its_recipe_and_regenerate_sends_it_again_with_a_new_seed() -> None:
    host = FakeHost((200, 100), selection=Rect(50, 20, 40, 30), keeps_recipes=True)
    client = VersionedClient(host, rasters=[pixels(8, 8)],
                             info={"offset": [0, 0], "seeds": [5], "model": "kontext",
                                   "names": ["a"]})
    params = {"instruction": "make it night", "steps": 9, "seed": 5, "image_guidance": 2.0}
    assert actions.edit(host, client, params, "kontext").ok
    recipe = Recipe.from_json(host.recipes["a"])
    assert (recipe.task, recipe.model, recipe.seed) == ("edit", "kontext", 5)
    assert recipe.params["instruction"] == "make it night"
    client.info = {"offset": [0, 0], "seeds": [77], "model": "kontext", "names": ["b"]}
    outcome = actions.regenerate(host, client, host.recipes["a"])
    assert outcome.ok, outcome.message
    first, again = client.requests
    assert again["task"] == "edit" and again["model"] == "kontext"
    assert {k: v for k, v in first["params"].items() if k != "seed"} == again["params"]
    assert len(again["rasters"]) == 2  # the current selection, as the first edit had
    assert Recipe.from_json(host.recipes["b"]).seed == 77


def test_a_refused_edit_changes_nothing() -> None:
    from sfumato.bridge.client import JobFailed

    host = FakeHost((200, 100))
    client = FakeClient(host, error=JobFailed(
        "wrong_model_kind", "model 'sdxl' is a sdxl model; this task needs a flux-kontext or "
        "instruct-pix2pix model"))
    outcome = actions.edit(host, client, {"instruction": "make it night"}, "sdxl")
    assert not outcome.ok and "flux-kontext" in outcome.message and host.layers == []
