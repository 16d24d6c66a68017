"""The Krita plug-in inside the REAL Krita 5.1.5 (under Xvfb), against a real daemon.

One Krita launch runs every GUI case: a test-only pykrita plug-in (tests/host/krita_driver)
waits for the image opened on Krita's command line, sets the sfumato docker's widgets (found by
objectName) as an artist would, selects, triggers the plug-in's OWN actions and writes what it
saw; each test below checks one case from outside, with numpy. The plug-in is installed with
`sfumato plugins install krita --dest ...`, as a user would. API-level checks (pixel formats,
selection bounds, CMYK/Lab refusal, no view) run in one kritarunner launch
(tests/host/krita_runner_cases.py), and one short GUI launch has no daemon at all.

Skips when the hosts are missing, unless HOSTS_REQUIRED=1 (CI), which makes that a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sfumato.bridge.recipe import Recipe

from tests.support.daemon_process import DaemonProcess, free_endpoint, start_daemon

pytestmark = pytest.mark.host

ROOT = Path(__file__).resolve().parents[2]
HOSTS = Path(os.environ.get("SFUMATO_HOSTS_DIR", ROOT.parent / "shared" / "hosts"))
DRIVER = Path(__file__).with_name("krita_driver")
PROMPTS = "prompts.jsonl"  # beside the daemon's home: what the segmenter was asked
SFUMATO = [sys.executable, "-m", "sfumato.core"]

W, H = 160, 112
GROW, FEATHER = 4, 16  # the inpaint defaults bridge/actions.py sends (the docker has no knobs)
INPAINT_SEL = (70, 40, 24, 20)
REFINE_SEL = (20, 60, 30, 20)
UPSCALE_SEL = (8, 8, 24, 16)
TINY = {"sfumato_prompt": "a red kite", "sfumato_model": "tiny", "sfumato_seed": 7,
        "sfumato_negative_prompt": "blur"}


def _cases(closed: str) -> list[dict[str, Any]]:
    return [
        {"name": "docker", "model": "tiny"},
        {"name": "inpaint", "action": "sfumato_inpaint", "selection": INPAINT_SEL, "undo": True,
         "widgets": {**TINY, "sfumato_steps": 5, "sfumato_strength": 100}},
        {"name": "refine", "action": "sfumato_refine", "selection": REFINE_SEL, "undo": True,
         "widgets": {**TINY, "sfumato_steps": 3, "sfumato_strength": 50}},
        {"name": "feathered", "action": "sfumato_inpaint", "selection": INPAINT_SEL,
         "feather": 5, "undo": True, "widgets": {**TINY, "sfumato_steps": 2}},
        {"name": "control_layer", "action": "sfumato_inpaint", "selection": INPAINT_SEL,
         "undo": True, "add_layer": "stripes",
         "widgets": {**TINY, "sfumato_steps": 5, "sfumato_control_kind": "canny",
                     "sfumato_control_layer": "stripes", "sfumato_control_scale": 1.5},
         "restore": {"sfumato_control_kind": ""}},
        {"name": "control_auto", "action": "sfumato_inpaint", "selection": INPAINT_SEL,
         "undo": True, "widgets": {**TINY, "sfumato_steps": 5, "sfumato_control_kind": "canny",
                                   "sfumato_control_layer": "", "sfumato_control_scale": 1.5},
         "restore": {"sfumato_control_kind": ""}},
        {"name": "image_prompt", "action": "sfumato_inpaint", "selection": INPAINT_SEL,
         "undo": True, "widgets": {**TINY, "sfumato_steps": 5,
                                   "sfumato_image_prompt_layer": "stripes",
                                   "sfumato_image_prompt_weight": 1.0},
         "restore": {"sfumato_image_prompt_layer": ""}},
        *GENERATE_CASES,
        *REMOVE_CASES,
        *SELECT_CASES,
        *EDIT_CASES,
        {"name": "cancel", "action": "sfumato_inpaint", "selection": INPAINT_SEL, "cancel": True,
         "widgets": {**TINY, "sfumato_steps": 150}},
        {"name": "no_daemon", "action": "sfumato_inpaint", "selection": INPAINT_SEL,
         "widgets": {**TINY, "sfumato_steps": 2, "sfumato_endpoint": closed},
         "expect_status_error": True, "restore": {"sfumato_endpoint": ""}},
        {"name": "upscale_selection", "action": "sfumato_upscale", "selection": UPSCALE_SEL,
         "undo": True, "widgets": {"sfumato_scale": 4.0,
                                   "sfumato_upscale_selection_only": True}},
        # SUPIR (issue 20) from the docker's upscaler list: a tiny SUPIR over a tiny SDXL
        {"name": "upscale_supir", "action": "sfumato_upscale", "selection": UPSCALE_SEL,
         "undo": True, "widgets": {"sfumato_upscaler": "supir-q", "sfumato_scale": 2.0,
                                   "sfumato_upscale_selection_only": True,
                                   "sfumato_refine_steps": 2, "sfumato_refine_seed": 3},
         "restore": {"sfumato_upscaler": "", "sfumato_refine_steps": 20,
                     "sfumato_refine_seed": -1}},
        # last: it scales the whole image
        {"name": "upscale_whole", "action": "sfumato_upscale", "selection": None,
         "widgets": {"sfumato_scale": 4.0, "sfumato_upscale_selection_only": False}},
        *EXPAND_CASES,  # after the last: it grows the canvas
    ]


# Generate and expand (issue 19): the plug-in's own actions, settings from the docker.
GENERATE_CASES = [
    {"name": "generate", "action": "sfumato_generate", "selection": None,
     "widgets": {**TINY, "sfumato_model": "tiny-gen", "sfumato_steps": 2}},
    # on the generated layer: its recipe again, a new seed, painted on the source under it
    {"name": "regenerate", "action": "sfumato_regenerate", "selection": None,
     "on_new_of": "generate", "undo": True, "widgets": {"sfumato_model": "tiny"}},
    # the docker set otherwise, then filled from the generated layer's recipe
    {"name": "reuse", "action": "sfumato_reuse_settings", "selection": None,
     "on_new_of": "generate", "widgets": {"sfumato_prompt": "a blue boat", "sfumato_steps": 9,
                                          "sfumato_model": "tiny"}},
]
# Object removal (issue 17): the Remove object box's own model list and fields.
REMOVE_EDGES = {"sfumato_remove_grow": 2, "sfumato_remove_feather": 4,
                "sfumato_remove_context": 8}
REMOVE_CASES = [
    {"name": "remove", "action": "sfumato_remove", "selection": INPAINT_SEL, "undo": True,
     "widgets": {"sfumato_remover": "tiny-lama", **REMOVE_EDGES},
     "restore": {"sfumato_remover": ""}},
]
# Select object (issue 18): the docker's Select object box; the daemon's worker answers with
# a known mask (tests/inject_mask), so the selection after can be checked exactly
SELECT_CONTEXT = 4
DOTS_ON = [(40, 30), (60, 50)]  # circle centres, in the SVG's units (Krita: points)
PATH_ON = [(100, 20), (110, 26), (104, 40)]  # a path's anchors: each one a point
DOTS_OFF = [(130, 90)]


def _dots(centres: list[tuple[int, int]], path: list[tuple[int, int]] = ()) -> str:
    shapes = "".join(f'<circle cx="{x}" cy="{y}" r="3" fill="#ff0000"/>' for x, y in centres)
    if path:
        shapes += '<path d="M{} {}{}" stroke="#000" fill="none"/>'.format(
            *path[0], "".join(f" L{x} {y}" for x, y in path[1:]))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}pt" height="{H}pt" '
            f'viewBox="0 0 {W} {H}">{shapes}</svg>')


SELECT_CASES = [
    # the result replaces the selection as one undo step: Undo brings the rough one back
    {"name": "select", "action": "sfumato_select", "selection": INPAINT_SEL,
     "undo": True, "undo_selection": True,
     "widgets": {"sfumato_segmenter": "tiny-sam2", "sfumato_select_mode": "selection",
                 "sfumato_select_context": SELECT_CONTEXT},
     "restore": {"sfumato_segmenter": ""}},
    # points: the shapes of one vector layer on the object, another's off it
    {"name": "select_points", "action": "sfumato_select", "selection": INPAINT_SEL,
     "undo": True, "undo_selection": True,
     "vector_layers": {"dots on": _dots(DOTS_ON, PATH_ON), "dots off": _dots(DOTS_OFF)},
     "widgets": {"sfumato_segmenter": "tiny-sam2", "sfumato_select_mode": "points",
                 "sfumato_select_include": "dots on", "sfumato_select_exclude": "dots off"},
     "restore": {"sfumato_segmenter": "", "sfumato_select_mode": "selection"}},
    # background removal: the object cut out as a new layer above the source (one undo step)
    {"name": "select_cutout", "action": "sfumato_select", "selection": INPAINT_SEL,
     "undo": True,
     "widgets": {"sfumato_segmenter": "tiny-sam2", "sfumato_select_mode": "selection",
                 "sfumato_select_context": SELECT_CONTEXT, "sfumato_select_output": "layer"},
     "restore": {"sfumato_segmenter": "", "sfumato_select_output": "selection"}},
]
# Edit by instruction (issue 19): the Edit box; the prompt box is the instruction; a tiny
# FLUX.1 Kontext (at 256 px: the docker's resolution field)
EDIT_SEL = (71, 41, 23, 19)
EDIT_CASES = [
    {"name": "edit", "action": "sfumato_edit", "selection": EDIT_SEL, "undo": True,
     "widgets": {"sfumato_prompt": "make it night", "sfumato_model": "tiny-edit",
                 "sfumato_seed": 7, "sfumato_steps": 2, "sfumato_resolution": 256},
     "restore": {"sfumato_resolution": 0}},
]
GROWN = {"sfumato_left": 8, "sfumato_right": 24, "sfumato_bottom": 8}
EXPAND_CASES = [
    {"name": "expand", "action": "sfumato_expand", "selection": None,
     "widgets": {**TINY, "sfumato_steps": 2, **GROWN},
     "restore": {name: 0 for name in GROWN}},
    # on the fill: the border painted again, the canvas not grown again
    {"name": "expand_regenerate", "action": "sfumato_regenerate", "selection": None,
     "on_new_of": "expand", "undo": True, "widgets": {}},
]


@dataclass
class Run:
    folder: Path
    inputs: Path
    daemon: DaemonProcess | None
    report: dict[str, Any]
    returncode: int

    def case(self, name: str) -> dict[str, Any]:
        assert not self.report.get("errors"), self.report["errors"]
        assert name in self.report["cases"], (name, list(self.report["cases"]))
        return self.report["cases"][name]

    def raw(self, name: str, file: str, size: tuple[int, int]) -> np.ndarray:
        """A B,G,R,A u8 dump as an R,G,B,A array."""
        data = (self.folder / name / f"{file}.raw").read_bytes()
        bgra = np.frombuffer(data, np.uint8).reshape(size[1], size[0], 4)
        return bgra[..., [2, 1, 0, 3]]


def _run(args: list[Any], env: dict[str, str] | None = None, timeout: float = 300,
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env,
                          timeout=timeout, start_new_session=True)


@pytest.fixture(scope="module")
def hosts_ready() -> None:
    check = _run(["bash", HOSTS / "ensure-hosts.sh", "--check"], timeout=60)
    if check.returncode != 0:
        if os.environ.get("HOSTS_REQUIRED") == "1":
            pytest.fail(f"HOSTS_REQUIRED=1 but the hosts are missing: {check.stderr}")
        pytest.skip(f"Krita host not installed ({check.stderr.strip()}): "
                    "`bash ../shared/hosts/ensure-hosts.sh` installs it, then these tests run")


def source_pixels() -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W]
    rgb = np.stack([(x * 3 + y) % 256, (y * 4 + 30) % 256, (x * y) % 256], axis=-1)
    alpha = np.full((H, W, 1), 255)
    return np.concatenate([rgb, alpha], axis=-1).astype(np.uint8)


@pytest.fixture(scope="module")
def daemon(hosts_ready: None, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[DaemonProcess]:
    from tests.support.tiny_fill import build_tiny_lama
    from tests.support.tiny_models import (
        build_tiny_controlnet,
        build_tiny_image_encoder,
        build_tiny_ip_adapter,
        build_tiny_model,
    )
    from tests.support.tiny_segmenters import build_tiny_sam2
    from tests.support.tiny_supir import build_tiny_supir

    tmp = tmp_path_factory.mktemp("krita-daemon")
    # the worker answers segment with a known mask (tests/inject_mask): the only double
    inject = os.pathsep.join([str(Path(__file__).resolve().parents[1] / "inject_mask"),
                              os.environ.get("PYTHONPATH", "")])
    process = start_daemon(tmp / "home", extra_env={"PYTHONPATH": inject,
                                                   "SFUMATO_INJECT_PROMPTS": str(tmp / PROMPTS)})
    try:
        build_tiny_image_encoder(tmp / "ip" / "image_encoder")
        models = {"tiny": build_tiny_model("sdxl-inpaint", tmp / "tiny-sdxl-inpaint"),
                  "tiny-gen": build_tiny_model("sdxl", tmp / "tiny-sdxl"),
                  "supir-q": build_tiny_supir(tmp / "tiny-sdxl", tmp / "SUPIR-v0Q.safetensors"),
                  "canny-sdxl": build_tiny_controlnet("sdxl", tmp / "canny-sdxl"),
                  "ip-sdxl": build_tiny_ip_adapter("sdxl", tmp / "ip" / "ip_sdxl.safetensors"),
                  "tiny-lama": build_tiny_lama(tmp / "tiny-lama.safetensors"),
                  "tiny-sam2": build_tiny_sam2(tmp / "tiny-sam2"),
                  "tiny-edit": build_tiny_model("flux-kontext", tmp / "tiny-kontext")}
        for name, path in models.items():
            added = _run([*SFUMATO, "models", "add", name, path], env=process.env())
            assert added.returncode == 0, added.stderr
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def resources(daemon: DaemonProcess, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plug-in as `sfumato plugins install krita --dest` lays it out."""
    folder = tmp_path_factory.mktemp("krita-resources")
    installed = _run([*SFUMATO, "plugins", "install", "krita", "--dest", folder],
                     env=daemon.env())
    assert installed.returncode == 0, installed.stderr
    assert "pyzmq" in installed.stdout
    return folder


@pytest.fixture(scope="module")
def krita(daemon: DaemonProcess, resources: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Run:
    tmp = tmp_path_factory.mktemp("krita")
    # A kept profile that already holds the installed .action file, so the real Krita
    # reads the actions' default shortcuts from it; run-krita.sh fills in the rest.
    profile = tmp / "profile"
    (profile / "data" / "krita" / "actions").mkdir(parents=True)
    shutil.copy2(resources / "actions" / "sfumato_krita.action",
                 profile / "data" / "krita" / "actions")
    Image.fromarray(source_pixels(), "RGBA").save(tmp / "input.png")
    out = tmp / "out"
    out.mkdir()
    cases = _cases(free_endpoint())
    # SFUMATO_KRITA_ONLY=select: only the cases so named (and the docker, which waits for the
    # daemon's lists), with `pytest -k`
    only = tuple(filter(None, os.environ.get("SFUMATO_KRITA_ONLY", "").split(",")))
    if only:
        cases = [c for c in cases if c["name"] == "docker" or c["name"].startswith(only)]
    (tmp / "cases.json").write_text(json.dumps(cases))
    started = time.monotonic()
    proc = _run([HOSTS / "run-krita.sh", "--profile", profile,
                 "--pykrita", resources / "pykrita", "--pykrita", DRIVER,
                 "--env", f"SFUMATO_ENDPOINT={daemon.endpoint}",
                 "--env", f"SFUMATO_HOME={daemon.home}",  # the plug-in's CURVE keys are there
                 "--env", f"SFUMATO_KRITA_CASES={tmp / 'cases.json'}",
                 "--env", f"SFUMATO_KRITA_OUT={out}",
                 "--screenshot", out / "timeout.png", "--timeout", 420,
                 "--", tmp / "input.png"], timeout=480)
    print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
    print(f"Krita ran {len(_cases(''))} cases in {time.monotonic() - started:.1f} s")
    report_file = out / "report.json"
    assert report_file.exists(), proc.stderr[-3000:]
    return Run(out, tmp, daemon, json.loads(report_file.read_text()), proc.returncode)


def _new_layer(krita: Run, name: str) -> tuple[dict[str, Any], np.ndarray]:
    case = krita.case(name)
    (new,) = case["new"]
    x, y, w, h = new["bounds"]
    return new, krita.raw(name, "new_0", (w, h))


def _assert_above_source(case: dict[str, Any], new: dict[str, Any]) -> None:
    ids = [layer["id"] for layer in case["layers"]]
    assert ids.index(new["id"]) == case["source_index"] + 1  # directly above the source
    assert new["type"] == "paintlayer"


def _assert_outside_untouched(krita: Run, name: str, layer: dict[str, Any],
                              pixels: np.ndarray) -> None:
    before = krita.raw(name, "composite_before", (W, H))
    after = krita.raw(name, "composite_after", (W, H))
    touched = np.zeros((H, W), bool)
    x, y, w, h = layer["bounds"]
    touched[y : y + h, x : x + w] = pixels[..., 3] > 0
    assert touched.any()
    assert np.array_equal(before[~touched], after[~touched])


# --- the docker -----------------------------------------------------------------------------


def test_docker_shows_the_daemons_models_and_status(krita: Run) -> None:
    case = krita.case("docker")
    widgets = case["widgets"]
    for name in ("sfumato_prompt", "sfumato_negative_prompt", "sfumato_model",
                 "sfumato_strength", "sfumato_steps", "sfumato_seed", "sfumato_generate",
                 "sfumato_progress", "sfumato_cancel", "sfumato_status", "sfumato_upscale"):
        assert widgets[name]["visible"], (name, widgets.get(name))
    assert "tiny" in case["models"]
    assert case["state"] in ("connected", "busy"), case["status"]
    assert case["status"].startswith(("connected", "busy")), case["status"]
    # What an artist sees: the screen shows the docker, drawn (not a blank rectangle).
    screen = np.asarray(Image.open(case["screenshot"]).convert("RGB")).astype(int)
    assert screen.shape == (1024, 1280, 3)
    x, y, w, h = case["dock_rect"]
    assert w > 100 and h > 200
    dock = screen[max(y, 0) : y + h, max(x, 0) : x + w]
    assert dock.size and dock.std() > 10
    assert len(np.unique(dock.reshape(-1, 3), axis=0)) > 20


def test_actions_have_texts_and_default_shortcuts_from_the_action_file(krita: Run) -> None:
    actions = krita.case("docker")["actions"]
    assert actions["sfumato_inpaint"]["text"] == "sfumato: Inpaint selection"
    assert actions["sfumato_inpaint"]["shortcut"] == "Ctrl+Alt+Shift+I"
    assert actions["sfumato_upscale"]["shortcut"] == "Ctrl+Alt+Shift+U"


# --- inpaint and refine ---------------------------------------------------------------------


def test_inpaint_adds_a_layer_at_the_selection_and_keeps_the_rest(krita: Run) -> None:
    case = krita.case("inpaint")
    assert case["message"] == "", case["message"]
    assert case["source_unchanged"] and case["selection_unchanged"]
    new, pixels = _new_layer(krita, "inpaint")
    _assert_above_source(case, new)
    assert new["name"] == "Inpaint: a red kite (seed 7)"  # the operation, prompt and seed
    sx, sy, sw, sh = INPAINT_SEL
    x, y, w, h = new["bounds"]
    # The layer's pixels cover the selection and reach no further than grow + feather.
    reach = GROW + FEATHER + 1
    assert x <= sx and y <= sy and x + w >= sx + sw and y + h >= sy + sh
    assert x >= sx - reach and y >= sy - reach
    assert x + w <= sx + sw + reach and y + h <= sy + sh + reach
    assert (pixels[sy - y : sy - y + sh, sx - x : sx - x + sw, 3] == 255).all()
    _assert_outside_untouched(krita, "inpaint", new, pixels)
    exported = np.asarray(Image.open(krita.folder / "inpaint" / "composite.png").convert("RGBA"))
    assert np.array_equal(exported, krita.raw("inpaint", "composite_after", (W, H)))


def test_inpaint_shows_step_previews_and_is_one_undo_step(krita: Run) -> None:
    case = krita.case("inpaint")
    assert case["preview_shown"]  # 5 steps: the daemon sends a preview at step 4
    assert "added Inpaint: a red kite (seed 7)" in case["progress_text"]
    before = [layer["name"] for layer in case["layers"] if layer not in case["new"]]
    assert case["layers_after_undo"] == before


def test_inpaint_with_a_feathered_selection(krita: Run) -> None:
    case = krita.case("feathered")
    assert case["message"] == "" and case["source_unchanged"] and case["selection_unchanged"]
    new, pixels = _new_layer(krita, "feathered")
    _assert_above_source(case, new)
    sx, sy, sw, sh = INPAINT_SEL
    x, y, w, h = new["bounds"]
    # Krita's feather spreads the selection: every partially selected pixel is repainted.
    assert x < sx - GROW and y < sy - GROW
    _assert_outside_untouched(krita, "feathered", new, pixels)


def test_refine_adds_a_layer_above_the_source(krita: Run) -> None:
    case = krita.case("refine")
    assert case["message"] == "" and case["source_unchanged"]
    new, pixels = _new_layer(krita, "refine")
    _assert_above_source(case, new)
    assert new["name"] == "Refine: a red kite (seed 7)"
    _assert_outside_untouched(krita, "refine", new, pixels)


# --- controls and image prompts chosen in the docker ---------------------------------------


@pytest.mark.parametrize("name", ["control_layer", "control_auto", "image_prompt"])
def test_docker_guides_change_the_result(krita: Run, name: str) -> None:
    """The same seed and prompt as the plain inpaint, plus a control (from the stripes layer,
    or made from the image) or a reference layer: the new layer is in the same place, made
    differently, and the rest of the picture is untouched."""
    case = krita.case(name)
    assert case["message"] == "", case["message"]
    assert case["source_unchanged"] and case["selection_unchanged"]
    new, pixels = _new_layer(krita, name)
    _assert_above_source(case, new)
    plain, plain_pixels = _new_layer(krita, "inpaint")
    assert new["bounds"] == plain["bounds"]
    assert np.abs(pixels.astype(int) - plain_pixels.astype(int)).max() > 8
    _assert_outside_untouched(krita, name, new, pixels)


# --- failures leave the document as it was --------------------------------------------------


def _assert_unchanged(krita: Run, name: str) -> dict[str, Any]:
    case = krita.case(name)
    assert case["new"] == []
    assert case["source_unchanged"] and case["selection_unchanged"]
    before = krita.raw(name, "composite_before", (W, H))
    assert np.array_equal(before, krita.raw(name, "composite_after", (W, H)))
    return case


def test_cancel_stops_the_job_and_changes_nothing(krita: Run) -> None:
    case = _assert_unchanged(krita, "cancel")
    assert case["cancel_clicked"]
    assert "cancelled" in case["message"]


def test_no_daemon_gives_a_readable_message_and_changes_nothing(krita: Run) -> None:
    case = _assert_unchanged(krita, "no_daemon")
    assert "no sfumato daemon answers" in case["message"]
    assert "sfumato serve" in case["message"] and "Traceback" not in case["message"]
    assert case["status"].startswith("error: no daemon at tcp://127.0.0.1:")
    assert case["seconds"] < 10


def test_krita_quits_cleanly(krita: Run) -> None:
    assert krita.returncode == 0
    assert not krita.report.get("errors")


def test_without_any_daemon_the_docker_says_so_and_krita_quits_cleanly(
        resources: Path, tmp_path: Path) -> None:
    """A second, short launch with nothing listening at all: the docker's status says what to
    do, the action's message too, the document stays as it was and Krita exits 0 (with a
    status request possibly still in flight when it quits)."""
    Image.fromarray(source_pixels(), "RGBA").save(tmp_path / "input.png")
    cases = [{"name": "status", "state": "error"},
             {"name": "no_daemon", "action": "sfumato_inpaint", "selection": INPAINT_SEL,
              "widgets": {"sfumato_prompt": "a red kite", "sfumato_steps": 2}}]
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    out = tmp_path / "out"
    out.mkdir()
    proc = _run([HOSTS / "run-krita.sh", "--pykrita", resources / "pykrita", "--pykrita", DRIVER,
                 "--env", f"SFUMATO_ENDPOINT={free_endpoint()}",
                 "--env", f"SFUMATO_KRITA_CASES={tmp_path / 'cases.json'}",
                 "--env", f"SFUMATO_KRITA_OUT={out}", "--timeout", 240,
                 "--", tmp_path / "input.png"], timeout=300)
    print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = Run(out, tmp_path, None, json.loads((out / "report.json").read_text()), 0)
    status = run.case("status")
    assert status["state"] == "error"
    assert status["status"].startswith("error: no daemon at tcp://127.0.0.1:")
    assert "sfumato serve" in status["status"]
    case = _assert_unchanged(run, "no_daemon")
    assert "no sfumato daemon answers" in case["message"]


# --- upscale with the real Real-ESRGAN weights ------------------------------------------------


def _reference_upscale(krita: Run) -> np.ndarray:
    ref = krita.inputs / "reference-x4.png"
    if not ref.exists():
        assert krita.daemon is not None
        done = _run([*SFUMATO, "upscale", krita.inputs / "input.png", "-o", ref],
                    env=krita.daemon.env())
        assert done.returncode == 0, done.stderr
    return np.asarray(Image.open(ref).convert("RGBA")).astype(int)


def test_upscale_selection_matches_the_cli(krita: Run) -> None:
    case = krita.case("upscale_selection")
    assert case["message"] == "" and case["source_unchanged"] and case["selection_unchanged"]
    assert case["canvas"] == [W, H]
    new, pixels = _new_layer(krita, "upscale_selection")
    _assert_above_source(case, new)
    sx, sy, sw, sh = UPSCALE_SEL
    assert new["bounds"] == [sx, sy, sw * 4, sh * 4]
    assert new["name"].startswith("sfumato upscale x4")
    expected = _reference_upscale(krita)[sy * 4 : sy * 4 + sh * 4, sx * 4 : sx * 4 + sw * 4]
    assert np.abs(pixels.astype(int) - expected).max() <= 1
    assert case["layers_after_undo"] == [layer["name"] for layer in case["layers"]
                                         if layer not in case["new"]]


def test_upscale_with_a_supir_model_from_the_docker(krita: Run) -> None:
    case = krita.case("upscale_supir")
    assert case["message"] == "" and case["source_unchanged"] and case["selection_unchanged"]
    assert case["canvas"] == [W, H]
    new, pixels = _new_layer(krita, "upscale_supir")
    _assert_above_source(case, new)
    sx, sy, sw, sh = UPSCALE_SEL
    assert new["bounds"] == [sx, sy, sw * 2, sh * 2]
    assert new["name"].startswith("sfumato upscale x2 supir-q")
    crop = Image.fromarray(source_pixels()[sy : sy + sh, sx : sx + sw], "RGBA")
    bicubic = np.asarray(crop.resize((sw * 2, sh * 2), Image.BICUBIC)).astype(int)
    assert np.abs(pixels[..., :3].astype(int) - bicubic[..., :3]).mean() > 2  # restored
    assert case["layers_after_undo"] == [layer["name"] for layer in case["layers"]
                                         if layer not in case["new"]]


def test_upscale_whole_layer_scales_the_image_and_matches_the_cli(krita: Run) -> None:
    case = krita.case("upscale_whole")
    assert case["message"] == ""
    assert case["canvas"] == [W * 4, H * 4]
    new, pixels = _new_layer(krita, "upscale_whole")
    _assert_above_source(case, new)
    assert new["bounds"] == [0, 0, W * 4, H * 4]
    assert np.abs(pixels.astype(int) - _reference_upscale(krita)).max() <= 1


# --- API level, in kritarunner (no window): pixel formats, selection, refusals ----------------

@dataclass
class RunnerRun:
    folder: Path
    report: dict[str, Any]

    def case(self, name: str) -> dict[str, Any]:
        facts = self.report[name]
        assert "error" not in facts, facts["error"]
        return facts

    def raw(self, name: str, dtype: str) -> np.ndarray:
        return np.frombuffer((self.folder / f"{name}.raw").read_bytes(), dtype)


@pytest.fixture(scope="module")
def runner(daemon: DaemonProcess, resources: Path,
           tmp_path_factory: pytest.TempPathFactory) -> RunnerRun:
    tmp = tmp_path_factory.mktemp("kritarunner")
    Image.fromarray(source_pixels(), "RGBA").save(tmp / "in8.png")
    proc = _run([HOSTS / "run-kritarunner.sh", "--timeout", 300,
                 "--env", f"SFUMATO_HOME={daemon.home}",  # the plug-in's CURVE keys
                 "--pythonpath", Path(__file__).parent, "--pythonpath", resources / "pykrita",
                 "-s", "krita_runner_cases", "-f", "main",
                 tmp, tmp / "in8.png", daemon.endpoint], timeout=360)
    print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return RunnerRun(tmp, json.loads((tmp / "report.json").read_text()))


def _srgb_to_linear(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _source16() -> np.ndarray:
    return source_pixels().reshape(-1).astype(int) * 257


def test_an_edits_recipe_survives_a_saved_kra_and_regenerate_gives_a_new_seed(
        runner: RunnerRun) -> None:
    from sfumato.bridge.recipe import Recipe

    facts = runner.case("recipe_kra")
    assert facts["made"][0], facts["made"]
    made = Recipe.from_json(facts["saved"])
    assert made.task == "edit" and made.model == "tiny-edit" and made.seed == 5
    assert made.params["instruction"] == "make it night" and made.params["steps"] == 2
    # saved, closed and opened again in the same Krita: the layers keep their ids and the
    # result layer its recipe, word for word
    assert facts["ids_kept"], facts
    assert facts["reopened"] == facts["saved"]
    assert facts["regenerated"][0], facts["regenerated"]
    (text,) = facts["new_recipes"]
    redone = Recipe.from_json(text)
    assert redone.task == made.task and redone.model == made.model
    assert redone.seed is not None and redone.seed != made.seed
    assert redone.again() == made.again()  # every setting but the seed


def test_16_bit_layers_are_read_in_rgba_order(runner: RunnerRun) -> None:
    facts = runner.case("u16")
    assert facts["format"] == ["RGBA", "U16", "sRGB-elle-V2-srgbtrc.icc"]
    assert facts["selection"] is None
    got = runner.raw(facts["raw"], "<u2").astype(int)  # Krita stores B,G,R,A
    assert np.abs(got - _source16()).max() <= 16  # LCMS rounding; a R/B swap is thousands
    as8 = runner.case("u16_as8")
    assert as8["read"]["layout"] == "rgba8"
    got8 = runner.raw(as8["raw"], "u1").astype(int)
    assert np.abs(got8 - source_pixels().reshape(-1)).max() <= 1


def test_linear_16_bit_layers_go_out_srgb_encoded(runner: RunnerRun) -> None:
    facts = runner.case("u16_linear")
    assert facts["format"] == ["RGBA", "U16", "sRGB-elle-V2-g10.icc"]
    got = runner.raw(facts["raw"], "<u2").astype(int)
    # Krita's linear 16-bit loses a little in the darks; the curve back must not add to it.
    assert np.abs(got - _source16()).max() <= 80


@pytest.mark.parametrize("case", ["f32", "f16"])
def test_float_layers_go_out_linear(runner: RunnerRun, case: str) -> None:
    facts = runner.case(case)
    assert facts["format"][1] == case.upper() and facts["read"]["layout"] == "rgbaf32"
    got = runner.raw(facts["raw"], "<f4").reshape(-1, 4)
    expected = source_pixels().reshape(-1, 4) / 255.0
    expected[:, :3] = _srgb_to_linear(expected[:, :3])
    assert np.abs(got - expected).max() <= 2e-3


def test_float_layers_go_to_diffusion_as_16_bit_srgb(runner: RunnerRun) -> None:
    facts = runner.case("f32_as_16")
    assert facts["read"]["layout"] == "rgba16"
    got = runner.raw(facts["raw"], "<u2").astype(int)
    assert np.abs(got - _source16()).max() <= 40


def test_results_written_into_a_float_layer_keep_their_colours(runner: RunnerRun) -> None:
    facts = runner.case("f32_write")
    assert facts["names"][-1] == "written"
    sent = runner.raw("f32_write_sent", "<u2").reshape(-1, 4).astype(int)
    oracle = runner.raw("f32_write_oracle", "<u2").reshape(-1, 4)[:, [2, 1, 0, 3]].astype(int)
    assert np.abs(oracle - sent).max() <= 40  # Krita's own conversion back to 16-bit sRGB


def test_selection_bounds_and_mask(runner: RunnerRun) -> None:
    facts = runner.case("selection")
    assert facts["none"] is None
    assert facts["rect"] == [10, 8, 20, 12]
    mask = np.array(facts["mask"], np.uint8).reshape(16, 24)  # read over (8, 6, 24, 16)
    assert (mask[2:14, 2:22] == 255).all() and mask.sum() == 255 * 20 * 12
    x, y, w, h = facts["feathered"]
    assert x < 10 and y < 8 and x + w > 30 and y + h > 20  # soft edges count as selected
    assert facts["off_canvas"] is not None and facts["off_canvas"][2:] in ([0, 0], [0, 20],
                                                                           [20, 0])


def test_without_a_view_the_layer_goes_directly_above_the_source(runner: RunnerRun) -> None:
    facts = runner.case("add_layer")
    assert facts["names"][-1] == "added" and len(facts["names"]) == 2
    assert facts["bounds"] == [10, 7, 6, 4]
    stored = runner.raw("added", "u1").reshape(-1, 4)[:, [2, 1, 0, 3]]
    assert np.array_equal(stored.reshape(-1), np.array(facts["sent"], np.uint8))


@pytest.mark.parametrize(("case", "model"), [("cmyk", "CMYK"), ("lab", "LAB")])
def test_cmyk_and_lab_are_refused_with_a_message(runner: RunnerRun, case: str,
                                                 model: str) -> None:
    facts = runner.case(case)
    assert not facts["ok"] and facts["unchanged"]
    assert model in facts["message"] and "Convert Image Color Space" in facts["message"]
    assert facts["refusal"] == facts["message"]


# --- generate and expand (issue 19) ----------------------------------------------------------


def test_generate_paints_a_canvas_sized_layer_keeping_its_recipe(krita: Run) -> None:
    widgets = krita.case("docker")["widgets"]
    for name in ("sfumato_new_picture", "sfumato_expand", "sfumato_left", "sfumato_bottom"):
        assert widgets[name]["visible"], name
    case = krita.case("generate")
    assert case["message"] == "", case["message"]
    assert case["source_unchanged"] and case["selection_unchanged"]
    new, pixels = _new_layer(krita, "generate")
    _assert_above_source(case, new)
    assert new["name"] == "Generate: a red kite (seed 7)"
    assert new["bounds"] == [0, 0, *case["canvas"]]
    assert (pixels[..., 3] == 255).all()
    (recipe,) = [Recipe.from_json(text) for text in case["recipes"]]
    assert (recipe.task, recipe.model, recipe.seed) == ("generate", "tiny-gen", 7)
    assert recipe.params["prompt"] == "a red kite" and recipe.params["steps"] == 2


def test_regenerate_paints_the_recipe_again_with_a_new_seed(krita: Run) -> None:
    first = Recipe.from_json(krita.case("generate")["recipes"][0])
    case = krita.case("regenerate")
    assert case["message"] == "", case["message"]
    new, _ = _new_layer(krita, "regenerate")
    _assert_above_source(case, new)  # on the source, under the layer it repainted
    (again,) = [Recipe.from_json(text) for text in case["recipes"]]
    # the recipe's model, not the docker's; the same settings, a new seed
    assert again.model == "tiny-gen" and again.seed != first.seed
    assert {**again.params, "seed": first.seed} == first.params
    assert new["name"] == f"Generate: a red kite (seed {again.seed})"
    before = [layer["name"] for layer in case["layers"] if layer not in case["new"]]
    assert case["layers_after_undo"] == before  # one undo step


def test_reuse_settings_fills_the_docker_from_the_recipe(krita: Run) -> None:
    case = krita.case("reuse")
    assert case["message"] == "" and case["new"] == []
    assert case["docker_after"] == {"prompt": "a red kite", "steps": 2, "model": "tiny-gen"}


def test_expand_grows_the_canvas_and_paints_only_the_border_and_seam(krita: Run) -> None:
    case = krita.case("expand")
    assert case["message"] == "", case["message"]
    (w, h), (gw, gh) = case["canvas_before"], case["canvas"]
    left, right, bottom = (GROWN[f"sfumato_{side}"] for side in ("left", "right", "bottom"))
    assert (gw, gh) == (w + left + right, h + bottom)  # exactly the amounts asked
    new, _ = _new_layer(krita, "expand")
    _assert_above_source(case, new)
    assert new["name"] == "Expand: a red kite (seed 7)"
    before = krita.raw("expand", "composite_before", (w, h))
    after = krita.raw("expand", "composite_after", (gw, gh))
    border = np.ones((gh, gw), bool)
    border[:h, left:left + w] = False
    assert (after[..., 3][border] == 255).all()  # every new pixel painted
    seam = 32  # expand's default feather: the fill blends this far into the picture
    assert np.array_equal(after[:h - seam, left + seam:left + w - seam],
                          before[:h - seam, seam:w - seam])  # moved by (left, 0), kept


# --- edit by instruction (issue 19) ----------------------------------------------------------


def test_edit_changes_the_selection_in_place_in_one_undo_step(krita: Run) -> None:
    assert krita.case("docker")["widgets"]["sfumato_edit"]["visible"]
    case = krita.case("edit")
    assert case["message"] == "", case["message"]
    assert case["source_unchanged"] and case["selection_unchanged"]
    new, pixels = _new_layer(krita, "edit")
    _assert_above_source(case, new)
    assert new["name"] == "Edit: make it night (seed 7)"
    sx, sy, sw, sh = EDIT_SEL
    x, y, w, h = new["bounds"]
    assert x <= sx and y <= sy and x + w >= sx + sw and y + h >= sy + sh
    assert (pixels[sy - y : sy - y + sh, sx - x : sx - x + sw, 3] == 255).all()
    _assert_outside_untouched(krita, "edit", new, pixels)
    (recipe,) = [Recipe.from_json(text) for text in case["recipes"]]
    assert (recipe.task, recipe.model, recipe.seed) == ("edit", "tiny-edit", 7)
    assert recipe.params["instruction"] == "make it night"
    assert case["layers_after_undo"] == [
        layer["name"] for layer in case["layers"] if layer not in case["new"]]


def test_regenerate_of_an_expand_paints_the_border_again_without_growing(krita: Run) -> None:
    first = krita.case("expand")
    case = krita.case("expand_regenerate")
    assert case["message"] == "", case["message"]
    assert case["canvas"] == case["canvas_before"] == first["canvas"]  # grown once
    new, _ = _new_layer(krita, "expand_regenerate")
    (fill,) = first["new"]
    assert new["bounds"] == fill["bounds"]  # where the first fill lies
    _assert_above_source(case, new)
    (before,) = [Recipe.from_json(text) for text in first["recipes"]]
    (again,) = [Recipe.from_json(text) for text in case["recipes"]]
    assert again.task == "expand" and again.seed != before.seed
    assert {**again.params, "seed": before.seed} == before.params
    assert case["layers_after_undo"] == [
        layer["name"] for layer in case["layers"] if layer not in case["new"]]


# --- object removal (issue 17) -------------------------------------------------------------------


def test_remove_object_adds_a_layer_over_the_selection_in_one_undo_step(krita: Run) -> None:
    case = krita.case("remove")
    assert case["message"] == "", case["message"]
    assert case["source_unchanged"] and case["selection_unchanged"]
    new, pixels = _new_layer(krita, "remove")
    _assert_above_source(case, new)
    assert new["name"] == "Remove (tiny-lama)"
    sx, sy, sw, sh = INPAINT_SEL
    x, y, w, h = new["bounds"]
    reach = REMOVE_EDGES["sfumato_remove_grow"] + REMOVE_EDGES["sfumato_remove_feather"] + 1
    assert x <= sx and y <= sy and x + w >= sx + sw and y + h >= sy + sh
    assert x >= sx - reach and y >= sy - reach
    assert x + w <= sx + sw + reach and y + h <= sy + sh + reach
    assert (pixels[sy - y : sy - y + sh, sx - x : sx - x + sw, 3] == 255).all()
    _assert_outside_untouched(krita, "remove", new, pixels)
    assert case["layers_after_undo"] == [
        layer["name"] for layer in case["layers"] if layer not in case["new"]]



def _gui_selection(krita: Run, name: str, file: str = "selection_after") -> np.ndarray:
    return np.frombuffer((krita.folder / name / f"{file}.raw").read_bytes(),
                         np.uint8).reshape(H, W)


def _rect_mask(rect: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = rect
    mask = np.zeros((H, W), np.uint8)
    mask[y:y + h, x:x + w] = 255
    return mask


def _layers_added(case: dict[str, Any]) -> list[dict[str, Any]]:
    """New nodes but Krita's own "Selection Mask" (how it shows the global selection: a new
    selection may come with a new one)."""
    return [node for node in case["new"] if node["type"] != "selectionmask"]


def test_docker_select_replaces_the_selection_with_the_mask_in_one_undo_step(
        krita: Run) -> None:
    case = krita.case("select")
    assert _layers_added(case) == [] and case["source_unchanged"], case["message"]
    x, y, w, h = INPAINT_SEL
    c = SELECT_CONTEXT
    assert np.array_equal(_gui_selection(krita, "select"),
                          _known_at(x - c, y - c, w + 2 * c, h + 2 * c))
    assert case["progress_text"] == "sfumato: done"
    assert case["source_masks"] == []  # the undoable route: no fallback mask was needed
    # one Undo: the rough selection exactly as it was; the layers as they were
    assert np.array_equal(_gui_selection(krita, "select", "selection_after_undo"),
                          _rect_mask(INPAINT_SEL))
    assert case["source_unchanged_after_undo"]


def test_docker_select_at_a_vector_layers_shapes(krita: Run) -> None:
    case = krita.case("select_points")
    assert _layers_added(case) == [] and case["source_unchanged"], case["message"]
    assert np.array_equal(_gui_selection(krita, "select_points"), _known_at(0, 0, W, H))
    assert np.array_equal(_gui_selection(krita, "select_points", "selection_after_undo"),
                          _rect_mask(INPAINT_SEL))
    # what the segmenter was asked: the circles' centres and the path's anchors in pixels, on
    # (1) and off (0) it
    assert krita.daemon is not None
    prompts = krita.daemon.home.parent / PROMPTS
    asked = [json.loads(line) for line in prompts.read_text().splitlines()]
    (points,) = [a["points"] for a in asked if a["points"]]
    xs, ys = (r / 72.0 for r in case["resolution"])
    expected = [[cx * xs, cy * ys, 1] for cx, cy in DOTS_ON + PATH_ON] + \
        [[cx * xs, cy * ys, 0] for cx, cy in DOTS_OFF]
    assert np.allclose(points, expected, atol=0.5), (points, expected)


def test_docker_select_cuts_the_object_out_as_a_new_layer(krita: Run) -> None:
    case = krita.case("select_cutout")
    assert case["source_unchanged"] and case["selection_unchanged"], case["message"]
    (new,) = _layers_added(case)
    bx, by, bw, bh = new["bounds"]
    pixels = krita.raw("select_cutout", f"new_{case['new'].index(new)}", (bw, bh))
    _assert_above_source(case, new)
    assert "Cutout" in new["name"] and case["source_masks"] == []
    # the layer as Krita holds it: the source's pixels over the crop the model saw, alpha
    # the known mask (the source is opaque); nothing elsewhere
    x, y, w, h = INPAINT_SEL
    c = SELECT_CONTEXT
    alpha = _known_at(x - c, y - c, w + 2 * c, h + 2 * c)
    expected = source_pixels().copy()  # (raw() reads Krita's B,G,R,A as R,G,B,A)
    expected[..., 3] = alpha
    assert not alpha[~_rect_mask((bx, by, bw, bh)).astype(bool)].any()
    shown = alpha[by:by + bh, bx:bx + bw] > 0
    assert np.array_equal(pixels[..., 3], alpha[by:by + bh, bx:bx + bw])
    assert np.array_equal(pixels[shown], expected[by:by + bh, bx:bx + bw][shown])
    # one Undo takes the layer away
    assert [n for n in case["layers_after_undo"] if n != "Selection Mask"] == [
        layer["name"] for layer in case["layers"]
        if layer["type"] != "selectionmask" and layer != new]

# --- select by segmentation (issue 18), API level in kritarunner ------------------------------


def _krita_selection(runner: RunnerRun, name: str) -> np.ndarray:
    return runner.raw(name, "u1").reshape(H, W)


def _known_at(x: int, y: int, width: int, height: int) -> np.ndarray:
    from tests.support.tiny_segmenters import known_mask

    expected = np.zeros((H, W), np.uint8)
    expected[y:y + height, x:x + width] = known_mask(height, width) * np.uint8(255)
    return expected


def _rough() -> np.ndarray:
    rough = np.zeros((H, W), np.uint8)
    rough[8:20, 10:30] = 255
    return rough


def test_select_subject_becomes_the_documents_selection_exactly(runner: RunnerRun) -> None:
    """No view (a script): Krita cannot undo setSelection, so the selection there was is kept
    as a hidden selection mask, and the artist is told so."""
    facts = runner.case("select_subject")
    assert facts["ok"], facts["message"]
    assert facts["layers_unchanged"] and facts["masks"] == ["sfumato: selection before"]
    assert np.array_equal(_krita_selection(runner, "subject_False_selection"),
                          _known_at(0, 0, W, H))
    assert np.array_equal(runner.raw("subject_False_mask", "u1").reshape(H, W), _rough())
    assert any("sfumato: selection before" in m for m in facts["host_messages"])


def test_select_in_the_rough_selection_places_the_mask_at_its_box(runner: RunnerRun) -> None:
    facts = runner.case("select_in_selection")
    assert facts["ok"], facts["message"]
    assert facts["layers_unchanged"]
    # the rough selection (10, 8, 20 x 12) and 4 px of context
    assert np.array_equal(_krita_selection(runner, "selection_False_selection"),
                          _known_at(6, 4, 28, 20))


def test_select_as_a_selection_mask_keeps_the_selection(runner: RunnerRun) -> None:
    facts = runner.case("select_as_mask")
    assert facts["ok"], facts["message"]
    assert facts["layers_unchanged"] and len(facts["masks"]) == 1
    assert np.array_equal(_krita_selection(runner, "subject_True_selection"), _rough())
    assert np.array_equal(runner.raw("subject_True_mask", "u1").reshape(H, W),
                          _known_at(0, 0, W, H))


def test_select_by_words_on_sam2_names_sam3_and_keeps_the_selection(
        runner: RunnerRun) -> None:
    facts = runner.case("select_words_on_sam2")
    assert not facts["ok"] and "SAM 3" in facts["message"]
    assert facts["layers_unchanged"] and facts["masks"] == []
    assert np.array_equal(_krita_selection(runner, "words_False_selection"), _rough())
