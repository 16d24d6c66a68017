"""bridge/actions.py against an in-memory HostDocument and a scripted client (no sockets).

What the real editors cannot show from a batch script is checked here: exactly one undo group
holds every change, layers are only made once the result is in, and failures change nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from sfumato.bridge import actions
from sfumato.bridge.client import DaemonUnavailable, JobCancelledError, JobFailed, JobOutcome
from sfumato.bridge.geometry import Rect
from sfumato.bridge.protocol import Progress, Result
from sfumato.bridge.raster import Layout, Raster
from sfumato.bridge.schema import INPAINT, TASKS

from tests.support.fake_host import FakeHost, pixels

pytestmark = pytest.mark.unit


class FakeClient:
    """Answers `run` with `rasters` (or a function of the request) and `info`, or raises."""

    def __init__(self, host: FakeHost, info: dict[str, Any] | None = None,
                 rasters: Any = None, error: Exception | None = None,
                 ping_error: Exception | None = None) -> None:
        self.host = host
        self.info = info or {}
        self.rasters = rasters
        self.error = error
        self.ping_error = ping_error
        self.requests: list[dict[str, Any]] = []

    def ping(self, rasters: Any = (), timeout_s: float | None = None) -> list[Raster]:
        if self.ping_error is not None:
            raise self.ping_error
        return []

    def run(self, task: str, params: dict, rasters: list[Raster], model: str | None,
            on_event: Any = None, should_cancel: Any = None) -> JobOutcome:
        self.requests.append({"task": task, "params": params, "rasters": rasters,
                              "model": model, "should_cancel": should_cancel})
        self.host.log.append(("run", task))
        for step in (1, 2):
            on_event(Progress(id="r1", job_id="j1", step=step, total=2, stage="denoise"), [])
        if self.error is not None:
            raise self.error
        out = self.rasters(rasters) if callable(self.rasters) else self.rasters
        return JobOutcome(Result(id="r1", job_id="j1", info=self.info), out)


def _changes(host: FakeHost) -> list[tuple[Any, ...]]:
    return [entry for entry in host.log if entry[0] in ("undo_start", "undo_end", "add_layer",
                                                        "scale_image")]


# --- inpaint ------------------------------------------------------------------------------


def test_inpaint_sends_only_the_selection_crop_and_places_the_result() -> None:
    host = FakeHost((400, 300), offset=(20, 12), selection=Rect(200, 150, 30, 20))
    result = pixels(50, 40)
    # the daemon says where its layer lies in the crop it was sent: (74, 74) there
    client = FakeClient(host, rasters=[result],
                        info={"offset": [74, 74], "seed": 3, "seeds": [3],
                              "name": "Inpaint: kite (seed 3)"})
    outcome = actions.inpaint_selection(host, client, {"prompt": "kite"}, "tiny")

    assert outcome == actions.ActionOutcome(True, "", ("Inpaint: kite (seed 3)",))
    (request,) = client.requests
    # inpaint's contract: grow 4, feather 16 (reaching 2 * 8), context 64 -> 84 px around
    assert INPAINT.reach({}) == 4 + 2 * 8 + 64
    area = Rect(116, 66, 198, 188)
    image, mask = request["rasters"]
    assert (image.width, image.height, image.layout) == (198, 188, Layout.RGBA8)
    assert (mask.width, mask.height, mask.layout) == (198, 188, Layout.GRAY8)
    assert bytes(mask.data).count(255) == 30 * 20
    # only what the artist set goes: the daemon's defaults are the contract's
    assert request["params"] == {"prompt": "kite"} and request["model"] == "tiny"
    assert ("read_pixels", area, Layout.RGBA8) in host.log
    assert not any(e[0] == "read_pixels" and e[1] == Rect(0, 0, 400, 300) for e in host.log)
    # the crop's place and the layer's own offset are added to the daemon's offset
    assert _changes(host) == [("undo_start", "sfumato inpaint"),
                              ("add_layer", 210, 152, "Inpaint: kite (seed 3)"),
                              ("undo_end", "sfumato inpaint")]
    assert host.log.index(("run", "inpaint")) < host.log.index(_changes(host)[1])
    assert host.messages == []


def test_inpaint_crop_margin_follows_the_params_and_the_layer_edge() -> None:
    host = FakeHost((100, 80), selection=Rect(5, 60, 10, 10))
    client = FakeClient(host, rasters=[pixels(10, 10)], info={"offset": [0, 0]})
    actions.inpaint_selection(host, client, {"grow": 0, "feather": 2, "context": 6}, None)
    image, _ = client.requests[0]["rasters"]
    # reach 0 + 2 * 1 + 6 = 8: box (5, 60)-(15, 70) grown to (-3, 52)-(23, 78), clamped at x 0
    assert (image.width, image.height) == (23, 26)
    assert ("read_pixels", Rect(0, 52, 23, 26), Layout.RGBA8) in host.log
    assert client.requests[0]["model"] is None


def test_variants_become_layers_named_by_the_task_first_on_top() -> None:
    host = FakeHost((64, 64), selection=Rect(10, 10, 8, 8))
    names = ["Inpaint (seed 5)", "Inpaint (seed 6)"]
    client = FakeClient(host, rasters=[pixels(8, 8), pixels(8, 8)],
                        info={"offset": [10, 10], "seeds": [5, 6], "name": names[0],
                              "names": names})
    outcome = actions.inpaint_selection(host, client, {"variants": 2}, "m")
    assert outcome.layers == tuple(names)
    assert [entry[0] for entry in _changes(host)] == ["undo_start", "add_layer", "add_layer",
                                                      "undo_end"]


def test_layer_name_falls_back_to_the_seed() -> None:
    host = FakeHost((64, 64), selection=Rect(10, 10, 8, 8))
    client = FakeClient(host, rasters=[pixels(8, 8)], info={"offset": [10, 10], "seed": 42})
    assert actions.inpaint_selection(host, client, {}, "m").layers == (
        "sfumato inpaint (seed 42)",)


def test_float_images_go_to_diffusion_as_16_bit() -> None:
    host = FakeHost((64, 64), selection=Rect(10, 10, 8, 8), layout=Layout.RGBAF32)
    client = FakeClient(host, rasters=[pixels(8, 8, Layout.RGBA16)], info={"offset": [0, 0]})
    assert actions.inpaint_selection(host, client, {}, "m").ok
    assert client.requests[0]["rasters"][0].layout is Layout.RGBA16


@pytest.mark.parametrize(("selection", "empty", "expected"), [
    (None, False, "Nothing is selected"),
    (None, True, "does not cover any pixel of the active layer"),
])
def test_inpaint_without_a_usable_selection_changes_nothing(
        selection: Rect | None, empty: bool, expected: str) -> None:
    host = FakeHost((64, 64), selection=selection, empty_selection=empty)
    client = FakeClient(host, rasters=[pixels(8, 8)])
    outcome = actions.inpaint_selection(host, client, {}, "m")
    assert not outcome.ok and expected in outcome.message
    assert host.messages == [outcome.message]
    assert client.requests == [] and _changes(host) == []


def test_refine_without_selection_sends_the_whole_layer() -> None:
    host = FakeHost((64, 48), offset=(5, 7))
    client = FakeClient(host, rasters=[pixels(64, 48)], info={"offset": [0, 0], "seed": 1})
    outcome = actions.refine(host, client, {"strength": 0.4}, "m")
    assert outcome.ok
    (image,) = client.requests[0]["rasters"]
    assert (image.width, image.height) == (64, 48)
    assert client.requests[0]["params"] == {"strength": 0.4}
    assert ("add_layer", 5, 7, "sfumato refine (seed 1)") in host.log


# --- cost follows the selection, not the canvas ---------------------------------------------


class LooseBoundsHost(FakeHost):
    """A host whose `selection_bounds` is only a hint: `hint` instead of the selected box."""

    def __init__(self, hint: Rect, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hint = hint

    def selection_bounds(self) -> Rect | None:
        return self.hint


def _reads(host: FakeHost) -> list[Rect]:
    return [entry[1] for entry in host.log if entry[0] in ("read_pixels", "read_selection")]


@pytest.mark.parametrize("action", ["inpaint", "refine", "upscale"])
def test_a_huge_canvas_costs_only_crop_sized_reads(action: str) -> None:
    # 16384x16384 is 1 GiB of RGBA8 and 256 MiB of mask: the fake makes only what is read.
    selection = Rect(9000, 7000, 256, 256)
    host = FakeHost((16384, 16384), offset=(-100, 50), selection=selection)
    client = FakeClient(host, rasters=[pixels(256, 256)], info={"offset": [0, 0], "scale": 1.0})
    if action == "upscale":
        outcome = actions.upscale_layer(host, client, {"scale": 1.0}, "m", selection_only=True)
        margin = actions.UPSCALE_CONTEXT
    else:
        run = actions.inpaint_selection if action == "inpaint" else actions.refine
        outcome = run(host, client, {}, "m")
        margin = TASKS[action].reach({})
    assert outcome.ok, outcome.message
    reads = _reads(host)
    assert reads and any(entry[0] == "read_selection" for entry in host.log)
    crop_area = selection.grown(margin)
    for rect in reads:
        assert rect.clamped(crop_area) == rect, (rect, crop_area)  # inside the crop
    assert client.requests[0]["rasters"][0].width <= 256 + 2 * margin


def test_a_loose_host_box_is_tightened_from_the_mask() -> None:
    exact = FakeHost((400, 300), selection=Rect(200, 150, 30, 20))
    loose = LooseBoundsHost(Rect(170, 120, 90, 80), size=(400, 300),
                            selection=Rect(200, 150, 30, 20))
    sent = []
    for host in (exact, loose):
        client = FakeClient(host, rasters=[pixels(8, 8)], info={"offset": [0, 0]})
        assert actions.inpaint_selection(host, client, {}, "m").ok
        sent.append(client.requests[0])
    crop_reads = [[e for e in host.log if e[0] == "read_pixels"] for host in (exact, loose)]
    assert crop_reads[0] == crop_reads[1] == [("read_pixels", Rect(116, 66, 198, 188),
                                               Layout.RGBA8)]
    assert [r.packed_bytes() for r in sent[0]["rasters"]] == \
        [r.packed_bytes() for r in sent[1]["rasters"]]


def test_a_box_with_nothing_selected_in_it_misses_the_layer() -> None:
    host = LooseBoundsHost(Rect(10, 10, 5, 5), size=(64, 64), empty_selection=True)
    client = FakeClient(host, rasters=[pixels(8, 8)])
    outcome = actions.inpaint_selection(host, client, {}, "m")
    assert not outcome.ok and outcome.message == actions.SELECTION_MISSES_LAYER
    assert client.requests == [] and _changes(host) == []


def test_a_selection_reaching_past_the_layer_is_clipped_to_it() -> None:
    host = FakeHost((100, 80), selection=Rect(-20, 70, 40, 30))
    client = FakeClient(host, rasters=[pixels(8, 8)], info={"offset": [0, 0]})
    assert actions.inpaint_selection(host, client, {"grow": 0, "feather": 2, "context": 6},
                                     "m").ok
    image, mask = client.requests[0]["rasters"]
    # box (0, 70, 20, 10) grown by the reach, 8, and clipped to the layer
    assert ("read_pixels", Rect(0, 62, 28, 18), Layout.RGBA8) in host.log
    assert (image.width, image.height) == (28, 18)
    assert bytes(mask.data).count(255) == 20 * 10


# --- failures -------------------------------------------------------------------------------


@pytest.mark.parametrize(("error", "where", "expected"), [
    (DaemonUnavailable("daemon_unavailable", "no sfumato daemon answers at tcp://x"), "ping",
     "no sfumato daemon answers"),
    (JobFailed("out_of_memory", "the GPU ran out of memory."), "run", "ran out of memory"),
    (JobCancelledError("cancelled", "job j1 was cancelled"), "run", "cancelled"),
])
def test_client_errors_become_a_message_and_no_change(error: Exception, where: str,
                                                       expected: str) -> None:
    host = FakeHost((64, 64), selection=Rect(10, 10, 8, 8))
    client = FakeClient(host, rasters=[pixels(8, 8)],
                        error=error if where == "run" else None,
                        ping_error=error if where == "ping" else None)
    outcome = actions.inpaint_selection(host, client, {}, "m")
    assert not outcome.ok
    assert expected in outcome.message and "unchanged" in outcome.message
    assert ".." not in outcome.message
    assert host.messages == [outcome.message]
    assert _changes(host) == []
    if where == "ping":
        assert client.requests == [] and not any(e[0] == "read_pixels" for e in host.log)


def test_progress_and_cancel_reach_the_host() -> None:
    host = FakeHost((64, 64), selection=Rect(10, 10, 8, 8))
    client = FakeClient(host, rasters=[pixels(8, 8)], info={"offset": [0, 0]})
    actions.inpaint_selection(host, client, {}, "m")
    assert (0.5, "sfumato inpaint: denoise") in host.progress_seen
    assert (1.0, "sfumato inpaint: denoise") in host.progress_seen
    should_cancel = client.requests[0]["should_cancel"]
    assert should_cancel() is False
    host.cancel = True
    assert should_cancel() is True


# --- upscale --------------------------------------------------------------------------------


def test_upscale_whole_layer_scales_the_image_then_adds_the_layer() -> None:
    host = FakeHost((40, 28), offset=(10, 6))
    client = FakeClient(host, rasters=[pixels(80, 56)],
                        info={"scale": 2.0, "model": "realesrgan-x4plus"})
    outcome = actions.upscale_layer(host, client, {"scale": 2.0}, None, selection_only=False)
    name = "sfumato upscale x2 realesrgan-x4plus"
    assert outcome == actions.ActionOutcome(True, "", (name,))
    request = client.requests[0]
    assert request["params"] == {"scale": 2.0} and request["model"] is None  # tile: automatic
    assert request["rasters"][0].width == 40
    assert _changes(host) == [("undo_start", name), ("scale_image", 2.0),
                              ("add_layer", 20, 12, name), ("undo_end", name)]


def test_upscale_model_scale_is_used_when_none_is_asked() -> None:
    host = FakeHost((40, 28))
    client = FakeClient(host, rasters=[pixels(160, 112)], info={"scale": 4})
    actions.upscale_layer(host, client, {}, "m", selection_only=False)
    assert "scale" not in client.requests[0]["params"]
    assert ("scale_image", 4.0) in host.log


def test_upscale_selection_only_sends_context_and_region() -> None:
    host = FakeHost((400, 300), offset=(10, 6), selection=Rect(150, 100, 16, 12))
    client = FakeClient(host, rasters=[pixels(64, 48)], info={"scale": 4.0, "model": "m"})
    outcome = actions.upscale_layer(host, client, {"scale": 4.0, "tile": 128}, "m",
                                    selection_only=True)
    assert outcome.ok
    request = client.requests[0]
    context = actions.UPSCALE_CONTEXT
    image = request["rasters"][0]
    assert (image.width, image.height) == (16 + 2 * context, 12 + 2 * context)
    assert request["params"] == {"scale": 4.0, "tile": 128,
                                 "region": [context, context, 16, 12]}
    assert _changes(host) == [("undo_start", outcome.layers[0]),
                              ("add_layer", 160, 106, "sfumato upscale x4 m (selection)"),
                              ("undo_end", outcome.layers[0])]


def test_upscale_selection_only_refuses_a_wrong_sized_answer() -> None:
    host = FakeHost((100, 100), selection=Rect(10, 10, 16, 12))
    client = FakeClient(host, rasters=[pixels(200, 200)], info={"scale": 4.0})
    outcome = actions.upscale_layer(host, client, {"scale": 4.0}, None, selection_only=True)
    assert not outcome.ok and "200x200" in outcome.message
    assert _changes(host) == []


def test_upscale_selection_only_needs_a_selection() -> None:
    host = FakeHost((100, 100))
    client = FakeClient(host, rasters=[pixels(8, 8)])
    outcome = actions.upscale_layer(host, client, {"scale": 4.0}, None, selection_only=True)
    assert not outcome.ok and "Nothing is selected" in outcome.message
    assert client.requests == []
