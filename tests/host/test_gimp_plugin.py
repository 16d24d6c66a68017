"""The GIMP 3 plug-in inside the REAL GIMP 3.0.4 (headless), against a real daemon.

One GIMP launch runs every case (tests/host/gimp_batch_cases.py); each test below checks one
case's output from outside, with numpy. The plug-in is installed with
`sfumato plugins install gimp --dest ...`, exactly as a user would.

Undo: GIMP 3's PDB has no undo call, so gimp-console cannot undo. Select object's undo is
checked in one short launch of the GUI GIMP under Xvfb (tests/host/gimp_undo_cases.py): the
test presses Ctrl+Z on the image window, and one Undo gives the previous selection back
exactly (or takes the cut-out layer away). The other procedures' single undo group is
checked against a fake host in tests/unit/test_actions_fake_host.py.

Skips when the hosts are missing, unless HOSTS_REQUIRED=1 (CI), which makes that a failure.
"""

from __future__ import annotations

import json
import os
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
from sfumato.bridge.schema import INPAINT
from sfumato.core.pixels.compose import composite_over

from tests.support.daemon_process import DaemonProcess, free_endpoint, start_daemon

pytestmark = pytest.mark.host

ROOT = Path(__file__).resolve().parents[2]
HOSTS = Path(os.environ.get("SFUMATO_HOSTS_DIR", ROOT.parent / "shared" / "hosts"))
BATCH = Path(__file__).with_name("gimp_batch_cases.py")
SFUMATO = [sys.executable, "-m", "sfumato.core"]

# (canvas, source layer) sizes. Upscales use the small pair (Real-ESRGAN on a CPU); diffusion
# cases the large one, so that the crop sent around a selection is visibly not the layer.
SIZES = {"small": ((64, 48), (40, 28)), "large": ((224, 160), (160, 120))}
CANVAS, SOURCE = SIZES["small"]
LARGE_CANVAS, LARGE_SOURCE = SIZES["large"]
DTYPES = {"u8": np.dtype(np.uint8), "u16": np.dtype("<u2"), "float": np.dtype("<f4")}
TINY = {"model": "tiny", "prompt": "a red kite", "steps": 2, "seed": 7, "grow": 2,
        "feather": 4, "context": 8}


def _case(name: str, procedure: str, args: dict[str, Any], *, offset: tuple[int, int] = (0, 0),
          selection: tuple[int, int, int, int] | None = None, shape: str = "rect",
          precision: str = "u8", size: str = "large", mode: str = "rgb",
          layers: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"name": name, "procedure": f"plug-in-sfumato-{procedure}", "args": args,
            "offset": list(offset), "precision": precision, "size": size, "mode": mode,
            "canvas": list(SIZES[size][0]), "layers": [GUIDE_LAYERS[n] for n in layers],
            "selection": None if selection is None else {"shape": shape,
                                                         "rect": list(selection)}}


# Other layers a case adds below the source (pictures written by _write_inputs).
GUIDE_LAYERS = {"lines": {"name": "lines", "file": "lines.png", "offset": [30, 20]},
                "ref": {"name": "ref", "file": "ref.png", "offset": [0, 0]}}
SEL = (90, 60, 12, 10)  # a rectangle inside the large layer, in image coordinates
GEN = {"model": "tiny-gen", "prompt": "a red kite", "steps": 2, "seed": 7, "feather": 4}
GROWN = {"left": 16, "right": 32, "bottom": 8}
GENERATE_EXPAND_CASES = [
    {**_case("generate_canvas", "generate", GEN, offset=(20, 12)),
     "then": {"procedure": "plug-in-sfumato-regenerate", "args": {}}},
    {**_case("generate_selection", "generate", {**GEN, "variants": 2}, offset=(20, 12),
             selection=SEL), "xcf": True},
    # the source reaches the canvas's right and bottom edges: its edge is the context
    _case("expand", "expand", {**GEN, "model": "tiny", "context": 8, **GROWN},
          offset=(64, 40)),
    # the same, then Regenerate on the fill: the border again, the canvas not grown again
    {**_case("expand_regenerate", "expand", {**GEN, "model": "tiny", "context": 8, **GROWN},
             offset=(64, 40)), "then": {"procedure": "plug-in-sfumato-regenerate", "args": {}}},
    # generate following a control made from the layer (the procedure's guide arguments)
    _case("generate_control", "generate", {**GEN, "control-kind": "canny",
                                           "control-model": "canny-sd15",
                                           "control-scale": 1.5}, offset=(20, 12)),
]
# Edit by instruction (issue 19): a tiny InstructPix2Pix; odd offsets and an odd selection
EDIT_SEL = (91, 61, 13, 11)
EDIT_ARGS = {"model": "tiny-edit", "instruction": "make it night", "steps": 2, "seed": 7,
             "feather": 4, "context": 8}
EDIT_CASES = [
    {**_case("edit_selection", "edit", EDIT_ARGS, offset=(21, 13), selection=EDIT_SEL),
     "then": {"procedure": "plug-in-sfumato-regenerate", "args": {}}, "xcf": True},
    _case("edit_wrong_model", "edit", {**EDIT_ARGS, "model": "tiny"}, offset=(21, 13),
          selection=EDIT_SEL),
]
# Select by segmentation (issue 18): the daemon's worker answers with a known mask
# (tests/inject_mask), so the selection GIMP ends with can be checked exactly.
SELECT = {"model": "tiny-sam2"}
SELECT_CASES = [
    _case("select_subject", "select", {**SELECT, "mode": "subject"}, offset=(21, 13),
          selection=SEL),
    _case("select_in_selection", "select", {**SELECT, "mode": "selection", "context": 8},
          offset=(21, 13), selection=(91, 61, 13, 11)),
    {**_case("select_path_as_channel", "select",
             {**SELECT, "mode": "points", "output": "channel"}, offset=(21, 13), selection=SEL),
     "paths": [[[100, 70], [120, 90]], [[30, 20]]]},
    # the object cut out as a new layer (issue 18: background removal in the host)
    _case("select_cutout_layer", "select", {**SELECT, "mode": "selection", "context": 6,
                                            "output": "layer"}, offset=(21, 13),
          selection=(93, 63, 15, 13)),
    _case("select_words_on_sam2", "select", {**SELECT, "mode": "words", "text": "the cat"},
          offset=(21, 13), selection=SEL),
]
CASES = [
    _case("inpaint_offset", "inpaint", TINY, offset=(20, 12), selection=SEL),
    _case("inpaint_variants", "inpaint", {**TINY, "variants": 2}, offset=(20, 12),
          selection=(60, 40, 30, 24), shape="ellipse"),
    _case("inpaint_u16", "inpaint", TINY, offset=(20, 12), selection=SEL, precision="u16"),
    _case("inpaint_float", "inpaint", TINY, offset=(20, 12), selection=SEL, precision="float"),
    _case("inpaint_gray", "inpaint", TINY, offset=(20, 12), selection=SEL, mode="gray"),
    _case("refine_selection", "refine", {**TINY, "strength": 0.5}, offset=(20, 12),
          selection=SEL),
    _case("refine_whole_layer", "refine", {**TINY, "strength": 0.5}, offset=(20, 12)),
    # GIMP's selection bounds hold the feathered edge: the crop must cover it too.
    _case("inpaint_feathered", "inpaint", TINY, offset=(20, 12), selection=SEL,
          shape="feathered"),
    _case("no_daemon", "inpaint", {**TINY, "endpoint": "CLOSED"}, offset=(20, 12),
          selection=SEL),
    _case("empty_selection", "inpaint", TINY, offset=(20, 12)),
    _case("selection_off_layer", "inpaint", TINY, offset=(20, 12),
          selection=(190, 136, 24, 16)),
    _case("indexed_refused", "inpaint", TINY, offset=(20, 12), selection=SEL, mode="indexed"),
    _case("unknown_model", "inpaint", {**TINY, "model": "no-such-model"}, offset=(20, 12),
          selection=SEL),
    # Controls and image prompts from other layers (issue 9), and a preprocessor's layer.
    _case("control_from_layer", "control",
          {**TINY, "control-kind": "scribble", "control-layer": "@layer:lines",
           "control-scale": 0.9}, offset=(20, 12), selection=SEL, layers=("lines",)),
    _case("image_prompt_and_auto_control", "image-prompt",
          {**TINY, "reference-layer": "@layer:ref", "reference-weight": 0.7,
           "control-kind": "canny"}, offset=(20, 12), selection=SEL, layers=("ref",)),
    _case("image_prompt_needs_a_reference", "image-prompt", TINY, offset=(20, 12),
          selection=SEL),
    _case("preprocess_canny", "preprocess", {"kind": "canny"}, offset=(20, 12)),
    # Generate and expand (issue 19): a new picture over the canvas or into the selection;
    # the canvas grown as Image > Canvas Size does, the fill a layer over the source.
    *GENERATE_EXPAND_CASES,
    *EDIT_CASES,
    *SELECT_CASES,
    # Object removal (issue 17): a tiny LaMa, registered with `models add`.
    _case("remove_lama", "remove", {"model": "tiny-lama", "grow": 2, "feather": 4,
                                    "context": 8}, offset=(20, 12), selection=SEL),
    _case("remove_nothing_selected", "remove", {"model": "tiny-lama"}, offset=(20, 12)),
    # Upscales last: after one, this daemon's diffusion jobs failed ("torchvision.__spec__ is
    # None", the spandrel torchvision stand-in); that belongs to the daemon's own tests.
    _case("upscale_whole", "upscale", {"scale": 4.0}, offset=(10, 6), size="small"),
    _case("upscale_selection", "upscale", {"scale": 4.0, "selection-only": True},
          offset=(10, 6), selection=(14, 10, 16, 12), size="small"),
    _case("upscale_float", "upscale", {"scale": 2.0}, offset=(10, 6), precision="float",
          size="small"),
    # SUPIR (issue 20): a tiny SUPIR over a tiny SDXL base, both registered with models add
    _case("upscale_supir", "upscale", {"model": "supir-q", "scale": 2.0,
                                       "refine-prompt": "a harbour", "refine-steps": 2,
                                       "refine-seed": 3}, offset=(10, 6), size="small"),
]
BY_NAME = {case["name"]: case for case in CASES}


@dataclass
class Run:
    folder: Path
    inputs: Path
    daemon: DaemonProcess
    gimp_seconds: float

    def result(self, name: str) -> dict[str, Any]:
        report = json.loads((self.folder / name / "result.json").read_text())
        assert "error" not in report, report["error"]
        return report

    def raw(self, name: str, file: str, size: tuple[int, int], precision: str) -> np.ndarray:
        data = (self.folder / name / f"{file}.raw").read_bytes()
        return np.frombuffer(data, DTYPES[precision]).reshape(size[1], size[0], 4)


def _run(args: list[Any], env: dict[str, str] | None = None, timeout: float = 300,
         ) -> subprocess.CompletedProcess[str]:
    # A new session: when pytest gives up, the host's whole process group goes with it.
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env,
                          timeout=timeout, start_new_session=True)


@pytest.fixture(scope="module")
def hosts_ready() -> None:
    check = _run(["bash", HOSTS / "ensure-hosts.sh", "--check"], timeout=60)
    if check.returncode != 0:
        if os.environ.get("HOSTS_REQUIRED") == "1":
            pytest.fail(f"HOSTS_REQUIRED=1 but the hosts are missing: {check.stderr}")
        pytest.skip(f"GIMP host not installed ({check.stderr.strip()}): "
                    "`bash ../shared/hosts/ensure-hosts.sh` installs it, then these tests run")


def _write_inputs(folder: Path) -> None:
    for size, (canvas, source) in SIZES.items():
        y, x = np.mgrid[0 : canvas[1], 0 : canvas[0]]
        background = np.stack([x * 4, y * 5, (x + y) * 2], axis=-1) % 256
        Image.fromarray(background.astype(np.uint8), "RGB").save(folder / f"bg-{size}.png")
        y, x = np.mgrid[0 : source[1], 0 : source[0]]
        layer = np.stack([200 - x * 3, 40 + y * 6, x * y, 160 + (x + y) % 96], axis=-1) % 256
        Image.fromarray(layer.astype(np.uint8), "RGBA").save(folder / f"source-{size}.png")
    lines = np.zeros((100, 120, 4), np.uint8)  # white strokes on transparent
    lines[20:80, 55:58] = 255
    lines[48:51, 20:100] = 255
    Image.fromarray(lines, "RGBA").save(folder / "lines.png")
    y, x = np.mgrid[0:64, 0:64]
    ref = np.stack([x * 4, 255 - y * 4, (x * y) % 256], axis=-1).astype(np.uint8)
    Image.fromarray(ref, "RGB").save(folder / "ref.png")


@pytest.fixture(scope="module")
def gimp(hosts_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    from tests.support.tiny_fill import build_tiny_lama
    from tests.support.tiny_models import (
        build_tiny_controlnet,
        build_tiny_image_encoder,
        build_tiny_ip_adapter,
        build_tiny_model,
    )
    from tests.support.tiny_segmenters import build_tiny_sam2
    from tests.support.tiny_supir import build_tiny_supir

    tmp = tmp_path_factory.mktemp("gimp")
    started = time.monotonic()
    inject = os.pathsep.join([str(ROOT / "tests" / "inject_mask"),
                              os.environ.get("PYTHONPATH", "")])
    daemon = start_daemon(tmp / "home", extra_env={"PYTHONPATH": inject})
    try:
        tiny = build_tiny_model("sd15-inpaint", tmp / "tiny-sd15-inpaint")
        guides = tmp / "guides"
        build_tiny_image_encoder(guides / "image_encoder")
        for name, path in (
            ("tiny", tiny),
            ("tiny-lama", build_tiny_lama(tmp / "tiny-lama.safetensors")),
            ("tiny-gen", build_tiny_model("sd15", tmp / "tiny-sd15")),
            ("tiny-sam2", build_tiny_sam2(tmp / "tiny-sam2")),
            ("tiny-sdxl", build_tiny_model("sdxl", tmp / "tiny-sdxl")),
            ("supir-q", build_tiny_supir(tmp / "tiny-sdxl", tmp / "SUPIR-v0Q.safetensors")),
            ("tiny-edit", build_tiny_model("instruct-pix2pix", tmp / "tiny-ip2p")),
            ("scribble-sd15", build_tiny_controlnet("sd15", guides / "scribble", seed=5)),
            ("canny-sd15", build_tiny_controlnet("sd15", guides / "canny")),
            ("ip-sd15", build_tiny_ip_adapter("sd15", guides / "ip-adapter_sd15.safetensors")),
        ):
            added = _run([*SFUMATO, "models", "add", name, path], env=daemon.env())
            assert added.returncode == 0, added.stderr
        plugins = tmp / "plug-ins"
        installed = _run([*SFUMATO, "plugins", "install", "gimp", "--dest", plugins],
                         env=daemon.env())
        assert installed.returncode == 0, installed.stderr
        _write_inputs(tmp)
        print(f"daemon, tiny model and plug-in ready in {time.monotonic() - started:.1f} s")
        closed = free_endpoint()  # nothing listens there
        # SFUMATO_GIMP_CASES=select_,edit_: only the cases so named (with `pytest -k`)
        only = (os.environ.get("SFUMATO_GIMP_CASES") or "").split(",")
        cases = [{**case, "background": str(tmp / f"bg-{case['size']}.png"),
                  "source": str(tmp / f"source-{case['size']}.png"),
                  "layers": [{**layer, "png": str(tmp / layer["file"])}
                             for layer in case["layers"]],
                  "args": {k: (closed if v == "CLOSED" else v)
                           for k, v in case["args"].items()}} for case in CASES
                 if case["name"].startswith(tuple(only))]
        (tmp / "cases.json").write_text(json.dumps(cases))
        out = tmp / "out"
        out.mkdir()
        started = time.monotonic()
        proc = _run([HOSTS / "run-gimp.sh", "--plugins", plugins, "--bind", tmp,
                     "--env", f"SFUMATO_ENDPOINT={daemon.endpoint}",
                     # the daemon's home (bound with tmp): the plug-in's CURVE keys are there
                     "--env", f"SFUMATO_HOME={daemon.home}",
                     "--env", f"SFUMATO_CASES={tmp / 'cases.json'}",
                     "--env", f"SFUMATO_CASES_OUT={out}", "--timeout", 600, BATCH], timeout=660)
        seconds = time.monotonic() - started
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
        print(f"GIMP ran {len(cases)} cases in {seconds:.1f} s")
        assert proc.returncode == 0, proc.stderr[-3000:]
        yield Run(out, tmp, daemon, seconds)
    finally:
        daemon.stop()


def _new_layers(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [layer for layer in report["layers"] if layer["name"] in report["new_layers"]]


def _canvas(name: str) -> tuple[int, int]:
    return SIZES[BY_NAME[name]["size"]][0]


def _assert_unchanged(gimp: Run, name: str) -> dict[str, Any]:
    report = gimp.result(name)
    canvas, precision = _canvas(name), BY_NAME[name]["precision"]
    assert report["new_layers"] == []
    assert [layer["name"] for layer in report["layers"]] == ["source", "Background"]
    assert report["image_size"] == list(canvas)
    assert report["source_unchanged"] and report["selection_unchanged"]
    before = gimp.raw(name, "composite_before", canvas, precision)
    assert np.array_equal(before, gimp.raw(name, "composite_after", canvas, precision))
    return report


def _assert_outside_alpha_untouched(gimp: Run, name: str) -> None:
    """Wherever no new layer has alpha, the visible image is bit-identical to before."""
    report = gimp.result(name)
    canvas, precision = _canvas(name), BY_NAME[name]["precision"]
    touched = np.zeros((canvas[1], canvas[0]), bool)
    for index, layer in enumerate(_new_layers(report)):
        pixels = gimp.raw(name, f"new_{index}", tuple(layer["size"]), precision)
        (x, y), (w, h) = layer["offsets"], layer["size"]
        assert x >= 0 and y >= 0 and x + w <= canvas[0] and y + h <= canvas[1]
        touched[y : y + h, x : x + w] |= pixels[..., 3] > 0
    before = gimp.raw(name, "composite_before", canvas, precision)
    after = gimp.raw(name, "composite_after", canvas, precision)
    assert touched.any()
    if BY_NAME[name].get("mode") == "gray":
        # GIMP renders a gray image's stack in another order once a layer is added, and now
        # and then rounds one semi-transparent pixel of the source over the background a
        # level the other way, far from the new layer (seen at one fixed pixel in 3 of 6
        # runs, the layers' own pixels bit-identical): one level, nothing more
        change = np.abs(before[~touched].astype(int) - after[~touched].astype(int))
        assert change.max() <= 1 and np.count_nonzero(change) <= 4, change.max()
    else:
        assert np.array_equal(before[~touched], after[~touched])


def _reference_upscale(gimp: Run) -> np.ndarray:
    ref = gimp.inputs / "reference-x4.png"
    if not ref.exists():
        done = _run([*SFUMATO, "upscale", gimp.inputs / "source-small.png", "-o", ref],
                    env=gimp.daemon.env())
        assert done.returncode == 0, done.stderr
    return np.asarray(Image.open(ref).convert("RGBA"))


# --- upscale ------------------------------------------------------------------------------


def test_upscale_whole_layer_scales_image_and_matches_cli(gimp: Run) -> None:
    report = gimp.result("upscale_whole")
    assert report["status"] == "success", report["message"]
    assert report["image_size"] == [CANVAS[0] * 4, CANVAS[1] * 4]
    names = [layer["name"] for layer in report["layers"]]
    assert names[1:] == ["source", "Background"], names  # the new layer right above the source
    new, source = report["layers"][0], report["layers"][1]
    assert new["name"] == "sfumato upscale x4 realesrgan-x4plus"
    assert source["offsets"] == [40, 24] and source["size"] == [160, 112]  # scaled by GIMP
    assert new["offsets"] == [40, 24] and new["size"] == [160, 112]
    pixels = gimp.raw("upscale_whole", "new_0", (160, 112), "u8").astype(int)
    assert np.abs(pixels - _reference_upscale(gimp).astype(int)).max() <= 1


def test_upscale_selection_only_adds_a_layer_and_keeps_the_image_size(gimp: Run) -> None:
    report = gimp.result("upscale_selection")
    assert report["status"] == "success", report["message"]
    assert report["image_size"] == list(CANVAS)
    assert report["source_unchanged"] and report["selection_unchanged"]
    (new,) = _new_layers(report)
    assert new["position"] == report["source_position"] - 1
    assert new["offsets"] == [14, 10] and new["size"] == [64, 48]  # 4x, at the selection
    pixels = gimp.raw("upscale_selection", "new_0", (64, 48), "u8").astype(int)
    # The selection is at (4, 4) in the layer: that part of the whole-layer upscale.
    expected = _reference_upscale(gimp)[16 : 16 + 48, 16 : 16 + 64].astype(int)
    assert np.abs(pixels - expected).max() <= 1


def test_upscale_float_image(gimp: Run) -> None:
    report = gimp.result("upscale_float")
    assert report["status"] == "success", report["message"]
    assert report["precision"] == "float-linear"
    assert report["image_size"] == [CANVAS[0] * 2, CANVAS[1] * 2]
    (new,) = _new_layers(report)
    assert new["offsets"] == [20, 12] and new["size"] == [80, 56]
    pixels = gimp.raw("upscale_float", "new_0", (80, 56), "float")
    assert np.isfinite(pixels).all() and pixels[..., 3].min() > 0.5


def test_upscale_with_a_supir_model_scales_the_image(gimp: Run) -> None:
    report = gimp.result("upscale_supir")
    assert report["status"] == "success", report["message"]
    assert report["image_size"] == [CANVAS[0] * 2, CANVAS[1] * 2]
    (new,) = _new_layers(report)
    assert new["name"] == "sfumato upscale x2 supir-q"
    assert new["offsets"] == [20, 12] and new["size"] == [80, 56]
    pixels = gimp.raw("upscale_supir", "new_0", (80, 56), "u8").astype(int)
    source = np.asarray(Image.open(gimp.inputs / "source-small.png").convert("RGBA"))
    bicubic = np.asarray(Image.fromarray(source).resize((80, 56), Image.BICUBIC)).astype(int)
    assert np.abs(pixels[..., 3] - bicubic[..., 3]).mean() <= 2  # the layer's alpha, resized
    assert np.abs(pixels[..., :3] - bicubic[..., :3]).mean() > 2  # restored, not resized


# --- inpaint and refine -----------------------------------------------------------------


def _assert_repainted(gimp: Run, name: str) -> dict[str, Any]:
    report = gimp.result(name)
    case = BY_NAME[name]
    assert report["status"] == "success", report["message"]
    assert report["image_size"] == list(_canvas(name))
    assert report["source_unchanged"] and report["selection_unchanged"]
    new = _new_layers(report)
    assert new and all(layer["name"] for layer in new)
    positions = sorted(layer["position"] for layer in new)
    assert positions == list(range(report["source_position"] - len(new),
                                   report["source_position"]))  # directly above the source
    # Only the selection's box plus margin was sent: the layers lie inside it and cover it.
    lx, ly = report["source_offsets_before"]
    lw, lh = LARGE_SOURCE
    margin = INPAINT.reach({k: TINY[k] for k in ("grow", "feather", "context")})
    sx, sy, sw, sh = case["selection"]["rect"]
    box = report["selection_box_before"]  # GIMP's bounds: partially selected pixels too
    if case["selection"]["shape"] == "feathered":
        assert box[0] < sx and box[1] < sy and box[2] > sx + sw and box[3] > sy + sh, box
    else:
        assert box == [sx, sy, sx + sw, sy + sh]
    sx0, sy0 = max(box[0], lx), max(box[1], ly)
    sx1, sy1 = min(box[2], lx + lw), min(box[3], ly + lh)
    crop = (max(sx0 - margin, lx), max(sy0 - margin, ly),
            min(sx1 + margin, lx + lw), min(sy1 + margin, ly + lh))
    for layer in new:
        (x, y), (w, h) = layer["offsets"], layer["size"]
        assert crop[0] <= x <= sx0 and crop[1] <= y <= sy0, (layer, crop)
        assert sx1 <= x + w <= crop[2] and sy1 <= y + h <= crop[3], (layer, crop)
    _assert_outside_alpha_untouched(gimp, name)
    return report


def test_inpaint_on_offset_layer(gimp: Run) -> None:
    report = _assert_repainted(gimp, "inpaint_offset")
    (new,) = _new_layers(report)
    assert "seed 7" in new["name"]
    pixels = gimp.raw("inpaint_offset", "new_0", tuple(new["size"]), "u8")
    (x, y), (sx, sy, sw, sh) = new["offsets"], SEL
    alpha = pixels[..., 3].copy()
    assert (alpha[sy - y : sy - y + sh, sx - x : sx - x + sw] == 255).all()  # fully replaced
    # Alpha stops within grow + feather of the selection: the rest of the crop is untouched.
    reach = TINY["grow"] + TINY["feather"] + 1
    alpha[max(sy - y - reach, 0) : sy - y + sh + reach,
          max(sx - x - reach, 0) : sx - x + sw + reach] = 0
    assert not alpha.any()
    png = np.asarray(Image.open(gimp.folder / "inpaint_offset" / "composite.png"))
    after = gimp.raw("inpaint_offset", "composite_after", LARGE_CANVAS, "u8")
    assert np.array_equal(png[..., :3], after[..., :3])  # what the PNG export shows


@pytest.mark.parametrize("name", ["inpaint_offset", "inpaint_u16", "inpaint_feathered",
                                  "inpaint_variants"])
def test_the_visible_image_is_the_daemons_composite(gimp: Run, name: str) -> None:
    """What the artist sees equals the daemon's composite (the CLI's `-o`) within one 8-bit
    level everywhere, the feathered edge included: GIMP composites our layers in the same
    sRGB-encoded values the daemon blended in, not in linear light."""
    report = gimp.result(name)
    canvas, precision = _canvas(name), BY_NAME[name]["precision"]
    expected = gimp.raw(name, "composite_before", canvas, precision)
    partial = 0
    layers = list(enumerate(_new_layers(report)))
    for index, layer in reversed(layers):  # bottom first, as GIMP stacks them
        pixels = gimp.raw(name, f"new_{index}", tuple(layer["size"]), precision)
        limit = np.iinfo(pixels.dtype).max
        partial += int(((pixels[..., 3] > 0) & (pixels[..., 3] < limit)).sum())
        expected = composite_over(expected, pixels, tuple(layer["offsets"]))
    assert layers and partial > 0  # there is a feather band to get wrong
    after = gimp.raw(name, "composite_after", canvas, precision)
    level = 1 if precision == "u8" else 257
    assert np.abs(after.astype(np.int64) - expected.astype(np.int64)).max() <= level


def test_inpaint_variants_become_one_layer_each(gimp: Run) -> None:
    report = _assert_repainted(gimp, "inpaint_variants")
    names = [layer["name"] for layer in _new_layers(report)]
    assert len(names) == 2 and len(set(names)) == 2
    assert "seed 7" in names[0] and "seed 8" in names[1]  # the first variant on top


def test_inpaint_16_bit_image(gimp: Run) -> None:
    report = _assert_repainted(gimp, "inpaint_u16")
    assert report["precision"] == "u16-non-linear"


def test_inpaint_float_image_goes_as_16_bit(gimp: Run) -> None:
    report = _assert_repainted(gimp, "inpaint_float")
    assert report["precision"] == "float-linear"


def test_inpaint_grayscale_image(gimp: Run) -> None:
    report = _assert_repainted(gimp, "inpaint_gray")
    assert report["base_type"] == "gray"


def test_inpaint_feathered_selection_covers_the_soft_edge(gimp: Run) -> None:
    report = _assert_repainted(gimp, "inpaint_feathered")
    (new,) = _new_layers(report)
    pixels = gimp.raw("inpaint_feathered", "new_0", tuple(new["size"]), "u8")
    (x, y), (x1, y1, x2, y2) = new["offsets"], report["selection_box_before"]
    # Every partially selected pixel is repainted at least a little.
    assert (pixels[y1 - y : y2 - y, x1 - x : x2 - x, 3] > 0).all()


def test_refine_selection(gimp: Run) -> None:
    _assert_repainted(gimp, "refine_selection")


def test_refine_without_selection_covers_the_layer(gimp: Run) -> None:
    report = gimp.result("refine_whole_layer")
    assert report["status"] == "success", report["message"]
    assert report["source_unchanged"]
    (new,) = _new_layers(report)
    assert new["position"] == report["source_position"] - 1
    assert new["offsets"] == [20, 12] and new["size"] == list(LARGE_SOURCE)


# --- failures leave the image as it was -----------------------------------------------------


def test_no_daemon_fails_fast_with_a_readable_message(gimp: Run) -> None:
    report = _assert_unchanged(gimp, "no_daemon")
    assert report["status"] == "execution-error"
    assert "no sfumato daemon answers" in report["message"]
    assert "Traceback" not in report["message"]
    assert report["seconds"] < 5.0


def test_empty_selection_is_refused_with_a_message(gimp: Run) -> None:
    report = _assert_unchanged(gimp, "empty_selection")
    assert report["status"] == "execution-error"
    assert "Nothing is selected" in report["message"]


def test_selection_off_the_layer_is_refused_with_a_message(gimp: Run) -> None:
    report = _assert_unchanged(gimp, "selection_off_layer")
    assert "does not cover any pixel of the active layer" in report["message"]


def test_indexed_image_is_refused_with_a_message(gimp: Run) -> None:
    report = _assert_unchanged(gimp, "indexed_refused")
    assert "indexed" in report["message"] and "Traceback" not in report["message"]


def test_unknown_model_is_refused_with_a_message(gimp: Run) -> None:
    report = _assert_unchanged(gimp, "unknown_model")
    assert report["status"] == "execution-error"
    assert "no-such-model" in report["message"] and "Traceback" not in report["message"]


# --- controls, image prompts, preprocessing (issue 9) ------------------------------------------


def test_control_from_another_layer(gimp: Run) -> None:
    report = _assert_repainted(gimp, "control_from_layer")
    lines = next(layer for layer in report["layers"] if layer["name"] == "lines")
    assert lines["offsets"] == [30, 20] and lines["size"] == [120, 100]  # left as it was
    plain = gimp.raw("inpaint_offset", "new_0", tuple(_new_layers(gimp.result(
        "inpaint_offset"))[0]["size"]), "u8")
    (new,) = _new_layers(report)
    guided = gimp.raw("control_from_layer", "new_0", tuple(new["size"]), "u8")
    assert guided.shape == plain.shape and not np.array_equal(guided, plain)  # it followed


def test_image_prompt_from_another_layer_with_an_auto_control(gimp: Run) -> None:
    report = _assert_repainted(gimp, "image_prompt_and_auto_control")
    (new,) = _new_layers(report)
    guided = gimp.raw("image_prompt_and_auto_control", "new_0", tuple(new["size"]), "u8")
    plain = gimp.raw("inpaint_offset", "new_0", tuple(new["size"]), "u8")
    assert not np.array_equal(guided, plain)


def test_image_prompt_without_a_reference_is_refused(gimp: Run) -> None:
    report = _assert_unchanged(gimp, "image_prompt_needs_a_reference")
    assert "reference layer" in report["message"]


def test_preprocess_adds_the_control_image_as_a_layer(gimp: Run) -> None:
    report = gimp.result("preprocess_canny")
    assert report["status"] == "success", report["message"]
    assert report["source_unchanged"]
    (new,) = _new_layers(report)
    assert new["name"] == "Control: canny" and new["position"] == report["source_position"] - 1
    assert new["offsets"] == [20, 12] and new["size"] == list(LARGE_SOURCE)
    pixels = gimp.raw("preprocess_canny", "new_0", tuple(new["size"]), "u8")
    assert (pixels[..., 3] == 255).all() and set(np.unique(pixels[..., :3])) <= {0, 255}


# --- generate and expand (issue 19) ----------------------------------------------------------


def test_generate_without_a_selection_is_a_canvas_sized_layer(gimp: Run) -> None:
    report = gimp.result("generate_canvas")
    assert report["status"] == "success", report["message"]
    (layer,) = _new_layers(report)
    assert layer["name"] == "Generate: a red kite (seed 7)"
    assert layer["offsets"] == [0, 0] and layer["size"] == list(LARGE_CANVAS)
    # above the source, with the regenerated one (below) between them
    assert layer["position"] == report["source_position"] - 2
    pixels = gimp.raw("generate_canvas", "new_0", LARGE_CANVAS, "u8")
    assert (pixels[..., 3] == 255).all() and report["source_unchanged"]
    # Regenerate on that layer: the same recipe, a new seed, a new layer
    then = report["then"]
    assert then["status"] == "success", then["message"]
    (again,) = [Recipe.from_json(text) for text in then["recipes"]]
    (first,) = [Recipe.from_json(text) for text in report["recipes"]]
    assert again.seed != first.seed == 7
    assert {**again.params, "seed": 7} == first.params and again.model == first.model
    assert then["new_layers"] == [f"Generate: a red kite (seed {again.seed})"]
    (regenerated,) = [x for x in report["layers"] if x["name"] == then["new_layers"][0]]
    assert regenerated["position"] == report["source_position"] - 1
    assert regenerated["size"] == list(LARGE_CANVAS)


def test_generate_into_the_selection_one_layer_per_variant(gimp: Run) -> None:
    report = gimp.result("generate_selection")
    assert report["status"] == "success", report["message"]
    layers = _new_layers(report)
    assert [layer["name"] for layer in layers] == ["Generate: a red kite (seed 7)",
                                                   "Generate: a red kite (seed 8)"]
    sx, sy, sw, sh = SEL
    for layer in layers:  # over the selection, reaching no further than the feather
        (x, y), (w, h) = layer["offsets"], layer["size"]
        assert x <= sx and y <= sy and x + w >= sx + sw and y + h >= sy + sh
        assert x >= sx - 2 * GEN["feather"] - 8 and y >= sy - 2 * GEN["feather"] - 8
    assert report["source_unchanged"] and report["selection_unchanged"]
    _assert_outside_alpha_untouched(gimp, "generate_selection")
    # each layer keeps what made it, and so does the saved .xcf
    recipes = [Recipe.from_json(text) for text in report["recipes"]]
    assert [r.seed for r in recipes] == [7, 8]
    assert all(r.task == "generate" and r.model == "tiny-gen" and r.daemon_version
               and r.params["prompt"] == "a red kite" and r.params["steps"] == 2
               for r in recipes)
    assert report["recipes_reopened"] == {layer["name"]: text for layer, text
                                          in zip(layers, report["recipes"], strict=True)}


def test_expand_grows_the_canvas_by_exactly_the_amounts_and_keeps_the_source(
        gimp: Run) -> None:
    report = gimp.result("expand")
    assert report["status"] == "success", report["message"]
    left, right, bottom = GROWN["left"], GROWN["right"], GROWN["bottom"]
    (cw, ch), (lw, lh) = LARGE_CANVAS, LARGE_SOURCE
    grown = (cw + left + right, ch + bottom)
    assert report["image_size"] == list(grown)
    by_name = {layer["name"]: layer for layer in report["layers"]}
    # every layer moved with the canvas, none was resized (Image > Canvas Size)
    assert by_name["source"]["offsets"] == [64 + left, 40]
    assert by_name["source"]["size"] == [lw, lh]
    assert by_name["Background"]["offsets"] == [left, 0]
    source = np.asarray(Image.open(gimp.inputs / "source-large.png").convert("RGBA"))
    assert np.array_equal(gimp.raw("expand", "source_after", (lw, lh), "u8"), source)
    (fill,) = _new_layers(report)
    assert fill["name"] == "Expand: a red kite (seed 7)"
    assert fill["position"] == report["source_position"] - 1  # over the source
    before = gimp.raw("expand", "composite_before", LARGE_CANVAS, "u8")
    after = gimp.raw("expand", "composite_after", grown, "u8")
    border = np.ones(after.shape[:2], bool)
    border[:ch, left:left + cw] = False
    assert (after[..., 3][border] == 255).all()  # every new pixel painted
    seam = 2 * GEN["feather"]  # inside the old edges that grew, the fill blends
    kept = after[:ch - seam, left + seam:left + cw - seam]
    assert np.array_equal(kept, before[:ch - seam, seam:cw - seam])


# --- edit by instruction (issue 19) ----------------------------------------------------------


def test_edit_changes_the_selection_in_place_and_regenerates_from_its_recipe(
        gimp: Run) -> None:
    report = gimp.result("edit_selection")
    assert report["status"] == "success", report["message"]
    (layer,) = _new_layers(report)[:1]
    assert layer["name"] == "Edit: make it night (seed 7)"
    sx, sy, sw, sh = EDIT_SEL
    (x, y), (w, h) = layer["offsets"], layer["size"]
    reach = 2 * EDIT_ARGS["feather"] + EDIT_ARGS["context"]
    assert sx - reach <= x <= sx and sy - reach <= y <= sy
    assert sx + sw <= x + w <= sx + sw + reach and sy + sh <= y + h <= sy + sh + reach
    assert layer["position"] == report["source_position"] - 2  # the regenerated one between
    assert report["source_unchanged"] and report["selection_unchanged"]
    _assert_outside_alpha_untouched(gimp, "edit_selection")
    # over the selection the edit is opaque where the source is: an edited layer keeps the
    # source's own alpha (as refine does), everywhere else it is clear
    pixels = gimp.raw("edit_selection", "new_0", (w, h), "u8")
    source = np.asarray(Image.open(gimp.inputs / "source-large.png").convert("RGBA"))
    ox, oy = BY_NAME["edit_selection"]["offset"]
    assert np.array_equal(pixels[sy - y:sy - y + sh, sx - x:sx - x + sw, 3],
                          source[sy - oy:sy - oy + sh, sx - ox:sx - ox + sw, 3])
    (first,) = [Recipe.from_json(text) for text in report["recipes"]]
    assert (first.task, first.model, first.seed) == ("edit", "tiny-edit", 7)
    assert first.params["instruction"] == "make it night"
    assert report["recipes_reopened"] == {layer["name"]: report["recipes"][0]}  # .xcf
    then = report["then"]
    assert then["status"] == "success", then["message"]
    (again,) = [Recipe.from_json(text) for text in then["recipes"]]
    assert again.seed != 7 and {**again.params, "seed": 7} == first.params
    assert then["new_layers"] == [f"Edit: make it night (seed {again.seed})"]


def test_edit_with_a_model_that_cannot_edit_changes_nothing(gimp: Run) -> None:
    report = _assert_unchanged(gimp, "edit_wrong_model")
    assert "instruct-pix2pix" in report["message"] and "'tiny'" in report["message"]


def test_regenerate_of_an_expand_paints_the_border_again_on_the_grown_canvas(
        gimp: Run) -> None:
    report = gimp.result("expand_regenerate")
    assert report["status"] == "success", report["message"]
    left, right, bottom = GROWN["left"], GROWN["right"], GROWN["bottom"]
    grown = [LARGE_CANVAS[0] + left + right, LARGE_CANVAS[1] + bottom]
    assert report["image_size"] == grown  # grown once, not twice
    then = report["then"]
    assert then["status"] == "success", then["message"]
    (first,) = [Recipe.from_json(text) for text in report["recipes"]]
    (again,) = [Recipe.from_json(text) for text in then["recipes"]]
    assert again.task == "expand" and again.seed != first.seed == 7
    assert {**again.params, "seed": 7} == first.params
    by_name = {layer["name"]: layer for layer in report["layers"]}
    (fill,) = _new_layers(report)
    regenerated = by_name[then["new_layers"][0]]
    assert regenerated["offsets"] == fill["offsets"] and regenerated["size"] == fill["size"]
    assert regenerated["position"] == report["source_position"] - 1  # on the source
    assert by_name["source"]["offsets"] == [64 + left, 40]  # moved once


def test_generate_follows_a_control_from_the_procedures_guide_arguments(gimp: Run) -> None:
    report = gimp.result("generate_control")
    assert report["status"] == "success", report["message"]
    (layer,) = _new_layers(report)
    assert layer["offsets"] == [0, 0] and layer["size"] == list(LARGE_CANVAS)
    (recipe,) = [Recipe.from_json(text) for text in report["recipes"]]
    assert [c["kind"] for c in recipe.guides["controls"]] == ["canny"]
    assert recipe.guides["controls"][0]["image"] == "auto"
    plain = gimp.raw("generate_canvas", "new_0", LARGE_CANVAS, "u8")  # the same, no control
    guided = gimp.raw("generate_control", "new_0", LARGE_CANVAS, "u8")
    assert not np.array_equal(plain, guided)


# --- object removal (issue 17) -------------------------------------------------------------------


def test_remove_object_fills_the_selection_as_a_new_layer(gimp: Run) -> None:
    report = _assert_repainted(gimp, "remove_lama")  # over the selection, above the source
    (new,) = _new_layers(report)
    assert new["name"] == "Remove (tiny-lama)"
    pixels = gimp.raw("remove_lama", "new_0", tuple(new["size"]), "u8")
    (x, y), (sx, sy, sw, sh) = new["offsets"], SEL
    assert (pixels[sy - y : sy - y + sh, sx - x : sx - x + sw, 3] == 255).all()


def test_remove_with_nothing_selected_changes_nothing(gimp: Run) -> None:
    report = _assert_unchanged(gimp, "remove_nothing_selected")
    assert "Nothing is selected" in report["message"] and "remove" in report["message"]


# --- select by segmentation (issue 18) -------------------------------------------------------


def _selection_after(gimp: Run, name: str) -> np.ndarray:
    width, height = _canvas(name)
    data = (gimp.folder / name / "selection_after.raw").read_bytes()
    return np.frombuffer(data, np.uint8).reshape(height, width)


def _known_on_canvas(name: str, x: int, y: int, width: int, height: int) -> np.ndarray:
    from tests.support.tiny_segmenters import known_mask

    canvas_w, canvas_h = _canvas(name)
    expected = np.zeros((canvas_h, canvas_w), np.uint8)
    expected[y:y + height, x:x + width] = known_mask(height, width) * np.uint8(255)
    return expected


def test_select_subject_replaces_the_selection_with_the_mask_exactly(gimp: Run) -> None:
    report = gimp.result("select_subject")
    assert report["status"] == "success", report["message"]
    assert report["new_layers"] == [] and report["new_channels"] == []
    assert report["source_unchanged"]  # the layers are untouched
    _assert_composite_unchanged(gimp, "select_subject")
    (width, height), (x, y) = LARGE_SOURCE, BY_NAME["select_subject"]["offset"]
    assert np.array_equal(_selection_after(gimp, "select_subject"),
                          _known_on_canvas("select_subject", x, y, width, height))


def test_select_in_the_rough_selection_places_the_mask_over_its_box(gimp: Run) -> None:
    report = gimp.result("select_in_selection")
    assert report["status"] == "success", report["message"]
    sx, sy, sw, sh = BY_NAME["select_in_selection"]["selection"]["rect"]
    context = BY_NAME["select_in_selection"]["args"]["context"]
    expected = _known_on_canvas("select_in_selection", sx - context, sy - context,
                                sw + 2 * context, sh + 2 * context)
    assert np.array_equal(_selection_after(gimp, "select_in_selection"), expected)
    assert report["source_unchanged"] and report["new_layers"] == []


def test_select_at_path_points_as_a_channel_keeps_the_selection(gimp: Run) -> None:
    report = gimp.result("select_path_as_channel")
    assert report["status"] == "success", report["message"]
    assert report["selection_unchanged"] and report["source_unchanged"]
    assert len(report["new_channels"]) == 1 and report["new_layers"] == []
    width, height = _canvas("select_path_as_channel")
    channel = np.frombuffer((gimp.folder / "select_path_as_channel" / "channel_0.raw")
                            .read_bytes(), np.uint8).reshape(height, width)
    (lw, lh), (x, y) = LARGE_SOURCE, BY_NAME["select_path_as_channel"]["offset"]
    assert np.array_equal(channel, _known_on_canvas("select_path_as_channel", x, y, lw, lh))


def test_select_by_words_on_sam2_names_sam3_and_changes_nothing(gimp: Run) -> None:
    report = _assert_unchanged(gimp, "select_words_on_sam2")
    assert report["status"] != "success"
    assert "SAM 3" in report["message"] and "cannot take words" in report["message"]
    assert report["new_channels"] == []


def _assert_composite_unchanged(gimp: Run, name: str) -> None:
    size = _canvas(name)
    assert np.array_equal(gimp.raw(name, "composite_before", size, "u8"),
                          gimp.raw(name, "composite_after", size, "u8"))


def test_select_cutout_adds_the_object_as_a_layer_over_its_box(gimp: Run) -> None:
    """Background removal in GIMP: a new layer above the source at the crop's place, its
    colours the source's, its alpha the daemon's mask exactly; source and selection kept."""
    name = "select_cutout_layer"
    report = gimp.result(name)
    assert report["status"] == "success", report["message"]
    assert report["source_unchanged"] and report["selection_unchanged"]
    assert report["new_channels"] == []
    (new,) = _new_layers(report)
    assert "Cutout" in new["name"] and new["position"] == report["source_position"] - 1
    sx, sy, sw, sh = BY_NAME[name]["selection"]["rect"]
    c = BY_NAME[name]["args"]["context"]
    x, y, w, h = sx - c, sy - c, sw + 2 * c, sh + 2 * c  # the box the model saw, in the image
    assert new["offsets"] == [x, y] and new["size"] == [w, h]
    from tests.support.tiny_segmenters import known_mask

    cut = gimp.raw(name, "new_0", (w, h), "u8")
    source = np.asarray(Image.open(gimp.inputs / "source-large.png"))
    ox, oy = BY_NAME[name]["offset"]
    under = source[y - oy:y - oy + h, x - ox:x - ox + w]
    known = known_mask(h, w)
    # alpha: the source's times the mask (a hard mask: the source's inside, 0 outside)
    assert np.array_equal(cut[..., 3], np.where(known, under[..., 3], 0))
    assert np.array_equal(cut[..., :3][known], under[..., :3][known])  # the source's colours


# --- Undo, in the GUI GIMP (gimp-console has no undo) -----------------------------------------
UNDO_BATCH = Path(__file__).with_name("gimp_undo_cases.py")
UNDO_CASE = {"offset": [21, 13], "selection": [91, 61, 13, 11],
             "args": {"model": "tiny-sam2", "mode": "selection", "context": 8}}


@pytest.fixture(scope="module")
def gimp_undo(gimp: Run, tmp_path_factory: pytest.TempPathFactory,
              ) -> tuple[Path, dict[str, Any]]:
    """One launch of the GUI GIMP (gimp-3.0 under Xvfb) whose batch shows the image in a
    window, runs plug-in-sfumato-select (replace the selection, then cut out as a layer) and,
    after each, waits while this presses Ctrl+Z on the window, as an artist would."""
    from tests.support.x_keys import press

    out = tmp_path_factory.mktemp("gimp-undo")
    inputs = gimp.inputs
    case = {**UNDO_CASE, "background": str(inputs / "bg-large.png"),
            "source": str(inputs / "source-large.png")}
    (out / "case.json").write_text(json.dumps(case))
    hosts_dir = Path(os.environ.get("PLUGIN_HOSTS_DIR", "/var/tmp/plugin-hosts"))
    root = Path(os.environ.get("PLUGIN_HOSTS_GIMP_ROOT", hosts_dir / "trixie"))
    # Xvfb picks a free display itself (-displayfd): no race with Krita's runs
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", "1", "-noreset", "-nolisten", "tcp",
                             "-screen", "0", "1280x1024x24"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert xvfb.stdout is not None
        display = ":" + xvfb.stdout.readline().decode().strip()
        profile = "/tmp/gimp-profile"  # on the root's own /tmp, as run-gimp.sh makes it
        seed = 'p=$1; shift; [ -e "$p/gimprc" ] || cp -a "$0/." "$p/"; exec "$@"'
        command = ["timeout", "-k", "10", "240", HOSTS / "lib" / "chroot-run.sh",
                   "--ro-bind", f"{inputs / 'plug-ins'}:{profile}/plug-ins",
                   "--bind", inputs, "--bind", out, "--bind", "/tmp/.X11-unix", root,
                   "bash", "-c", seed, "/opt/plugin-hosts/gimp-profile", profile,
                   "env", f"GIMP3_DIRECTORY={profile}", "PYTHONDONTWRITEBYTECODE=1",
                   f"DISPLAY={display}", f"SFUMATO_ENDPOINT={gimp.daemon.endpoint}",
                   f"SFUMATO_HOME={gimp.daemon.home}", f"SFUMATO_UNDO_CASE={out / 'case.json'}",
                   f"SFUMATO_UNDO_OUT={out}", "gimp-3.0", "-d", "-f", "--no-splash",
                   "--batch-interpreter=python-fu-eval", "-b", "-", "--quit"]
        with UNDO_BATCH.open() as batch:
            host = subprocess.Popen([str(c) for c in command], stdin=batch,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, start_new_session=True)
        try:
            for step in (0, 1):
                deadline = time.monotonic() + 180
                while not (out / f"ready_{step}").exists():
                    assert host.poll() is None and time.monotonic() < deadline, \
                        f"GIMP never asked for Ctrl+Z {step}"
                    time.sleep(0.1)
                press(display, "Control_L", "z")
                (out / f"sent_{step}").touch()
            log, _ = host.communicate(timeout=240)
        finally:
            if host.poll() is None:
                host.kill()
        print(log[-3000:])
        assert host.returncode == 0, log[-3000:]
    finally:
        xvfb.terminate()
        xvfb.wait(timeout=30)
    return out, json.loads((out / "result.json").read_text())


def _canvas_bytes(folder: Path, name: str) -> np.ndarray:
    width, height = LARGE_CANVAS
    return np.frombuffer((folder / f"{name}.raw").read_bytes(), np.uint8).reshape(height,
                                                                                 width)


def test_one_undo_gives_back_the_selection_there_was(
        gimp_undo: tuple[Path, dict[str, Any]]) -> None:
    from tests.support.tiny_segmenters import known_mask

    folder, report = gimp_undo
    facts = report["selection"]
    assert facts["ok"], facts["message"]
    sx, sy, sw, sh = UNDO_CASE["selection"]
    c = UNDO_CASE["args"]["context"]
    expected = np.zeros(LARGE_CANVAS[::-1], np.uint8)
    expected[sy - c:sy + sh + c, sx - c:sx + sw + c] = known_mask(sh + 2 * c, sw + 2 * c) * 255
    assert np.array_equal(_canvas_bytes(folder, "selection_after_0"), expected)
    # Ctrl+Z once: the rough selection exactly as it was; no layer came or went
    rough = _canvas_bytes(folder, "selection_before_0")
    assert rough.any() and np.array_equal(_canvas_bytes(folder, "selection_undone_0"), rough)
    assert facts["added"] == [] and facts["layers_after_undo"] and facts["source_unchanged"]


def test_one_undo_takes_the_cutout_layer_away(gimp_undo: tuple[Path, dict[str, Any]]) -> None:
    folder, report = gimp_undo
    facts = report["layer"]
    assert facts["ok"], facts["message"]
    assert len(facts["added"]) == 1 and "Cutout" in facts["added"][0]
    assert facts["layers_after_undo"] and facts["source_unchanged"]
    before = _canvas_bytes(folder, "selection_before_1")
    for after in ("selection_after_1", "selection_undone_1"):  # the selection never changed
        assert np.array_equal(_canvas_bytes(folder, after), before)
