"""Controls (ControlNet, T2I-Adapter) and image prompts (IP-Adapter, Plus Face) through the
inpaint and refine tasks, on tiny random-weight models registered with the real `models add`
code and loaded through diffusers' and transformers' own loaders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.raster import Layout
from sfumato.bridge.schema import ResultInfo
from sfumato.core.errors import SfumatoError
from sfumato.core.pixels.arrays import array_to_raster, raster_to_array
from sfumato.core.pixels.compose import composite_over, resize_rgb
from sfumato.core.pixels.masks import soft_mask
from sfumato.core.tasks import inpaint, preprocess, refine

pytest_plugins = ["tests.support.tiny_fixtures", "tests.support.guide_fixtures"]

pytestmark = pytest.mark.integration

FAST = {"steps": 2, "resolution": 128, "seed": 5, "prompt": "a kite", "context": 16}
HEIGHT, WIDTH = 96, 128


def _layer() -> np.ndarray:
    rng = np.random.default_rng(0)
    layer = rng.integers(0, 256, (HEIGHT, WIDTH, 4), dtype=np.uint8)
    layer[..., 3] = 255
    layer[30:70, 40:90, :3] = (220, 40, 40)  # a red block: edges for the preprocessors
    return layer


def _mask() -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[30:70, 40:90] = 255
    return mask


def _drawing(height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """A white circle outline on transparent, as an artist's control layer might be."""
    y, x = np.mgrid[0:height, 0:width]
    ring = np.abs(np.hypot((x - width / 2) / width, (y - height / 2) / height) - 0.3) < 0.03
    image = np.zeros((height, width, 4), np.uint8)
    image[ring] = 255
    return image


def _raster(array: np.ndarray, layout: Layout = Layout.RGBA8) -> Any:
    return array_to_raster(array, layout)


def _inpaint(context: Callable[..., Any], extra_params: dict[str, Any],
             extra_rasters: list[np.ndarray] = (), model: str = "sdxl-inpaint") -> Any:
    rasters = [_raster(_layer()), _raster(_mask(), Layout.GRAY8)]
    rasters += [_raster(image) for image in extra_rasters]
    return inpaint.run(context({**FAST, **extra_params}, rasters, model))


def _pixels(result: Any) -> np.ndarray:
    return raster_to_array(result.rasters[0])


def _assert_outside_untouched(result: Any) -> None:
    layer = _layer()
    placed = composite_over(layer, _pixels(result), tuple(result.info["offset"]))
    outside = soft_mask(_mask(), 4, 16) == 0
    assert np.array_equal(placed[outside], layer[outside])


def test_a_control_changes_the_picture_and_scale_zero_changes_nothing(
    guided_context: Callable[..., Any],
) -> None:
    plain = _inpaint(guided_context, {})
    canny = _inpaint(guided_context, {"controls": [{"kind": "canny", "image": "auto"}]})
    zero = _inpaint(guided_context, {"controls": [{"kind": "canny", "image": "auto",
                                                   "scale": 0.0}]})
    assert not np.array_equal(_pixels(plain), _pixels(canny))
    assert np.array_equal(_pixels(plain), _pixels(zero))
    assert canny.info["offset"] == plain.info["offset"]
    _assert_outside_untouched(canny)
    assert canny.info["warnings"] == []


def test_two_controls_mix_a_controlnet_and_a_t2i_adapter(
    guided_context: Callable[..., Any],
) -> None:
    canny = {"kind": "canny", "image": "auto", "model": "canny-sdxl"}
    lineart = {"kind": "lineart", "image": 2, "scale": 0.9, "end": 0.5}
    one = _inpaint(guided_context, {"controls": [canny]}, model="sdxl")
    both = _inpaint(guided_context, {"controls": [canny, lineart]}, [_drawing()], model="sdxl")
    adapter_only = _inpaint(guided_context, {"controls": [lineart]}, [_drawing()], model="sdxl")
    assert not np.array_equal(_pixels(one), _pixels(both))
    assert not np.array_equal(_pixels(adapter_only), _pixels(both))
    _assert_outside_untouched(both)


def test_a_strong_control_is_warned_about(guided_context: Callable[..., Any]) -> None:
    result = _inpaint(guided_context, {"controls": [{"kind": "canny", "scale": 1.5}]})
    (warning,) = result.info["warnings"]
    assert "1.5" in warning and "canny" in warning


def test_a_control_image_of_another_size_is_stretched_to_the_layer(
    guided_context: Callable[..., Any],
) -> None:
    small = _drawing(HEIGHT // 2, WIDTH // 3)
    params = {**FAST, "strength": 0.7, "controls": [{"kind": "scribble", "image": 1}]}
    sent = refine.run(guided_context(params, [_raster(_layer()), _raster(small)], "sd15"))
    stretched = resize_rgb(small, (WIDTH, HEIGHT))
    same = refine.run(guided_context(params, [_raster(_layer()), _raster(stretched)], "sd15"))
    plain = refine.run(guided_context({**FAST, "strength": 0.7}, [_raster(_layer())], "sd15"))
    assert (sent.rasters[0].width, sent.rasters[0].height) == (WIDTH, HEIGHT)  # no mask: all
    assert np.array_equal(_pixels(sent), _pixels(same))
    assert not np.array_equal(_pixels(sent), _pixels(plain))


def test_image_prompts_steer_and_weight_zero_is_no_image_prompt(
    guided_context: Callable[..., Any],
) -> None:
    reference = _drawing(48, 40)
    reference[..., :3] = (30, 200, 90)
    reference[..., 3] = 255
    plain = _inpaint(guided_context, {})
    weighted = _inpaint(guided_context, {"image_prompts": [{"image": 2, "weight": 0.8}]},
                        [reference])
    zero = _inpaint(guided_context, {"image_prompts": [{"image": 2, "weight": 0.0}]},
                    [reference])
    plus = _inpaint(guided_context, {"image_prompts": [
        {"image": 2, "weight": 0.8, "model": "ip-plus-face-sdxl"}]}, [reference])
    assert not np.array_equal(_pixels(plain), _pixels(weighted))
    assert not np.array_equal(_pixels(weighted), _pixels(plus))
    assert np.array_equal(_pixels(plain), _pixels(zero))
    _assert_outside_untouched(plus)
    # the adapter left the shared UNet: the next plain run is the plain picture again
    assert np.array_equal(_pixels(plain), _pixels(_inpaint(guided_context, {})))


def test_controls_and_image_prompts_together(guided_context: Callable[..., Any]) -> None:
    params = {"controls": [{"kind": "canny"}], "image_prompts": [{"image": 2, "weight": 0.7}]}
    both = _inpaint(guided_context, params, [_layer()])
    control = _inpaint(guided_context, {"controls": [{"kind": "canny"}]})
    assert not np.array_equal(_pixels(both), _pixels(control))
    _assert_outside_untouched(both)


@pytest.mark.parametrize(
    ("params", "model", "code", "words"),
    [
        ({"controls": [{"kind": "normalbae"}]}, "sdxl-inpaint", ErrorCode.BAD_PARAMS,
         ("normalbae", "canny", "depth")),
        ({"controls": [{"kind": "depth"}]}, "sd15-inpaint", ErrorCode.UNKNOWN_MODEL,
         ("SD 1.5", "depth", "sfumato models add")),
        ({"controls": [{"kind": "pose", "image": 2}]}, "sdxl-inpaint", ErrorCode.UNKNOWN_MODEL,
         ("pose", "sfumato models add")),
        ({"controls": [{"kind": "canny", "model": "canny-sd15"}]}, "sdxl-inpaint",
         ErrorCode.WRONG_MODEL_KIND, ("canny-sd15", "SDXL")),
        ({"controls": [{"kind": "canny", "image": 7}]}, "sdxl-inpaint", ErrorCode.BAD_PARAMS,
         ("image",)),
        ({"controls": [{"kind": "canny", "scale": 3}]}, "sdxl-inpaint", ErrorCode.BAD_PARAMS,
         ("scale",)),
        ({"controls": [{"kind": "canny", "start": 0.8, "end": 0.2}]}, "sdxl-inpaint",
         ErrorCode.BAD_PARAMS, ("start",)),
        ({"image_prompts": [{"image": 2}]}, "sd15-inpaint", ErrorCode.UNKNOWN_MODEL,
         ("IP-Adapter", "sfumato models add")),
        ({"controls": [{"kind": "canny"}]}, "flux-fill", ErrorCode.WRONG_MODEL_KIND,
         ("FLUX Fill",)),
    ],
)
def test_what_cannot_be_done_is_a_typed_error_naming_the_fix(
    guided_context: Callable[..., Any], params: dict[str, Any], model: str, code: ErrorCode,
    words: tuple[str, ...],
) -> None:
    with pytest.raises(SfumatoError) as caught:
        _inpaint(guided_context, params, [_drawing()], model=model)
    assert caught.value.code is code, caught.value
    for word in words:
        assert word in caught.value.message, caught.value.message


def test_depth_comes_from_the_depth_model_in_the_store(guided_context: Callable[..., Any],
                                                       make_context: Callable[..., Any]) -> None:
    layer = _layer()
    layer[:8, :8, 3] = 0  # transparent: counts as black
    made = preprocess.run(guided_context({"kind": "depth"},
                                         [_raster(layer)], None))
    (raster,) = made.rasters
    depth = raster_to_array(raster)
    assert (raster.width, raster.height, raster.layout) == (WIDTH, HEIGHT, Layout.RGBA8)
    assert ResultInfo.from_wire(made.info) == ResultInfo(names=("Control: depth",))
    assert (depth[..., 3] == 255).all()
    assert np.array_equal(depth[..., 0], depth[..., 1])  # a grey map ...
    assert depth[..., 0].min() == 0 and depth[..., 0].max() == 255  # ... using the full range
    plain = _inpaint(guided_context, {})
    controlled = _inpaint(guided_context, {"controls": [{"kind": "depth"}]})
    assert not np.array_equal(_pixels(plain), _pixels(controlled))
    # a store without a depth model: the error says what to install
    with pytest.raises(SfumatoError) as caught:
        preprocess.run(make_context({"kind": "depth"}, [_raster(layer)], None))
    assert caught.value.code is ErrorCode.UNKNOWN_MODEL
    assert "sfumato models add depth" in caught.value.message


def test_pose_comes_from_the_pose_model_in_the_store(guided_context: Callable[..., Any],
                                                     make_context: Callable[..., Any]) -> None:
    from sfumato.core.preprocessors.pose import (  # pinned by tests/unit/test_pose.py
        COLOURS,
        LIMB_COLOURS,
    )

    made = preprocess.run(guided_context({"kind": "pose"},
                                         [_raster(_layer())], None))
    (raster,) = made.rasters
    skeleton = raster_to_array(raster)
    assert (raster.width, raster.height, raster.layout) == (WIDTH, HEIGHT, Layout.RGBA8)
    assert ResultInfo.from_wire(made.info) == ResultInfo(names=("Control: pose",))
    assert (skeleton[..., 3] == 255).all()
    # an OpenPose drawing: black, limbs and joints in their colours, nothing else; where the
    # random-weight model puts the keypoints is arbitrary, but they score high enough to show
    used = {tuple(int(v) for v in c) for c in np.unique(skeleton[..., :3].reshape(-1, 3), axis=0)}
    assert (0, 0, 0) in used and used - {(0, 0, 0)}
    assert used <= {(0, 0, 0), *COLOURS, *LIMB_COLOURS}
    assert (skeleton[..., :3].sum(axis=2) == 0).mean() > 0.5
    # the same model named by id; a depth model named for pose is refused
    by_id = preprocess.run(guided_context({"kind": "pose"}, [_raster(_layer())], "vitpose"))
    assert np.array_equal(raster_to_array(by_id.rasters[0]), skeleton)
    with pytest.raises(SfumatoError) as caught:
        preprocess.run(guided_context({"kind": "pose"}, [_raster(_layer())], "dpt-depth"))
    assert caught.value.code is ErrorCode.WRONG_MODEL_KIND
    # `auto` for a pose control in a diffusion run draws it the same way and steers the result
    plain = _inpaint(guided_context, {})
    controlled = _inpaint(guided_context, {"controls": [{"kind": "pose", "model": "depth-sdxl"}]})
    assert not np.array_equal(_pixels(plain), _pixels(controlled))
    # a store without a pose model: the error says what to install
    with pytest.raises(SfumatoError) as caught:
        preprocess.run(make_context({"kind": "pose"}, [_raster(_layer())], None))
    assert caught.value.code is ErrorCode.UNKNOWN_MODEL
    assert "sfumato models add pose" in caught.value.message
    assert "vitpose" in caught.value.message


def test_preprocess_canny_marks_the_red_block_outline(guided_context: Callable[..., Any]) -> None:
    flat = np.full((HEIGHT, WIDTH, 4), 255, np.uint8)
    flat[30:70, 40:90, :3] = (220, 40, 40)
    (raster,) = preprocess.run(guided_context({"kind": "canny"}, [_raster(flat)], None)).rasters
    edges = raster_to_array(raster)[..., 0] > 0
    inside = np.zeros_like(edges)
    inside[27:73, 37:93] = True
    inside[33:67, 43:87] = False  # a band of 3 px either side of the outline
    assert edges[30:70, 38:42].any(axis=1).all() and not edges[~inside].any()


def test_guide_folders_are_recognised_and_pickle_only_ones_refused(
    guide_home: Any, tmp_path: Any,
) -> None:
    import shutil

    from sfumato.core.models.guide_loader import load_guide_model
    from sfumato.core.models.model_add import describe_model

    store = guide_home / "store"
    pickled = Path(shutil.copytree(store / "canny-sdxl", tmp_path / "pickled"))
    weights = pickled / "diffusion_pytorch_model.safetensors"
    weights.rename(pickled / "diffusion_pytorch_model.bin")
    entry = describe_model("pickled", pickled)
    assert entry.kind == "controlnet"  # recognised from its config ...
    with pytest.raises(SfumatoError) as caught:
        load_guide_model(entry, "cpu")  # ... but never unpickled
    assert caught.value.code is ErrorCode.UNSAFE_WEIGHTS and "safetensors" in caught.value.message
    plain = describe_model("ip", store / "sdxl_models" / "ip-adapter_sdxl.safetensors")
    assert plain.kind == "ip-adapter"
    assert plain.config == str(store / "sdxl_models" / "image_encoder")  # found beside it
    # a ViTPose folder is known by its model type even without `architectures`, and its
    # pickle-only copy is refused the same way
    import json

    pose = Path(shutil.copytree(store / "vitpose-tiny", tmp_path / "vitpose"))
    config = json.loads((pose / "config.json").read_text())
    del config["architectures"]
    (pose / "config.json").write_text(json.dumps(config))
    (pose / "model.safetensors").rename(pose / "pytorch_model.bin")
    entry = describe_model("pose", pose)
    assert (entry.kind, entry.format) == ("pose-estimator", "transformers")
    with pytest.raises(SfumatoError) as caught:
        load_guide_model(entry, "cpu")
    assert caught.value.code is ErrorCode.UNSAFE_WEIGHTS and "safetensors" in caught.value.message


def test_flux_refine_follows_a_flux_controlnet(guided_context: Callable[..., Any]) -> None:
    params = {**FAST, "strength": 0.8}
    rasters = [_raster(_layer()), _raster(_mask(), Layout.GRAY8)]
    plain = refine.run(guided_context(params, rasters, "flux"))
    canny = refine.run(guided_context({**params, "controls": [{"kind": "canny"}]}, rasters,
                                      "flux"))
    assert not np.array_equal(_pixels(plain), _pixels(canny))
    assert canny.info["offset"] == plain.info["offset"]
    with pytest.raises(SfumatoError) as caught:  # an SDXL ControlNet does not fit FLUX
        refine.run(guided_context({**params, "controls": [{"kind": "canny",
                                                           "model": "canny-sdxl"}]},
                                  rasters, "flux"))
    assert caught.value.code is ErrorCode.WRONG_MODEL_KIND and "FLUX" in caught.value.message
    with pytest.raises(SfumatoError) as caught:  # IP-Adapters are SD 1.5 / SDXL only
        refine.run(guided_context({**params, "image_prompts": [{"image": 2}]},
                                  [*rasters, _raster(_layer())], "flux"))
    assert caught.value.code is ErrorCode.WRONG_MODEL_KIND and "SDXL" in caught.value.message


def test_single_file_controlnets_draw_what_their_folders_draw(
    guided_context: Callable[..., Any], guide_home: Path, guide_provider: Any, tmp_path: Path,
) -> None:
    """ControlNets kept as one file, as ComfyUI and A1111 keep them: registered by `models add`
    and by a scan of the install, loaded through diffusers' single-file loader."""
    from sfumato.core.models.model_add import register_model, register_sources
    from sfumato.core.models.registry import Registry

    from tests.support.original_layout import save_original_layout_controlnet

    store = guide_home / "store"
    registry = Registry(guide_home)
    loose = save_original_layout_controlnet(store / "canny-sd15", tmp_path / "cn_sd15.safetensors")
    added = register_model(registry, "cn-sd15-file", loose)
    assert (added.kind, added.format) == ("controlnet", "single_file")
    install = tmp_path / "install"
    a1111 = install / "models" / "ControlNet"
    save_original_layout_controlnet(store / "canny-sdxl", a1111 / "cn_sdxl_file.safetensors")
    comfy = install / "models" / "controlnet"
    # SDXL ControlNets are often passed around as diffusers' weights file renamed
    (comfy / "xl").mkdir(parents=True)
    (comfy / "xl" / "cn_sdxl_renamed.safetensors").write_bytes(
        (store / "canny-sdxl" / "diffusion_pytorch_model.safetensors").read_bytes())
    (comfy / "notes.safetensors").write_bytes(b"\x00" * 3)  # damaged: not offered
    scanned = {e.name: e for e in register_sources(registry, install)}
    assert {n: (e.kind, e.format) for n, e in scanned.items()} == {
        "cn_sdxl_file": ("controlnet", "single_file"),
        "cn_sdxl_renamed": ("controlnet", "single_file"),
    }

    def canny(model: str) -> dict[str, Any]:
        return {"controls": [{"kind": "canny", "image": "auto", "model": model}]}

    folder = _inpaint(guided_context, canny("canny-sd15"), model="sd15-inpaint")
    single = _inpaint(guided_context, canny("cn-sd15-file"), model="sd15-inpaint")
    assert np.array_equal(_pixels(folder), _pixels(single))
    plain = _inpaint(guided_context, {}, model="sd15-inpaint")
    assert not np.array_equal(_pixels(single), _pixels(plain))
    folder_xl = _inpaint(guided_context, canny("canny-sdxl"))
    for name in scanned:
        assert np.array_equal(_pixels(folder_xl), _pixels(_inpaint(guided_context, canny(name))))
    with pytest.raises(SfumatoError) as caught:  # an SD 1.5 ControlNet on an SDXL model
        _inpaint(guided_context, canny("cn-sd15-file"))
    assert caught.value.code is ErrorCode.WRONG_MODEL_KIND
    assert "SDXL" in caught.value.message


def test_a_single_file_controlnet_missing_tensors_is_refused_not_run_half_random(
    guided_context: Callable[..., Any], guide_home: Path, guide_provider: Any, tmp_path: Path,
) -> None:
    """A truncated download (one tensor short) must be refused, typed and named, rather than
    run with a random layer; the SDXL original-layout path, which loads its own text-time
    embedding, is the one most at risk."""
    from safetensors.torch import load_file, save_file
    from sfumato.core.models.model_add import register_model
    from sfumato.core.models.registry import Registry

    from tests.support.original_layout import save_original_layout_controlnet

    whole = save_original_layout_controlnet(guide_home / "store" / "canny-sdxl",
                                            tmp_path / "whole.safetensors")
    tensors = load_file(str(whole))
    dropped = next(key for key in tensors if "zero_convs" in key)
    del tensors[dropped]
    save_file(tensors, str(tmp_path / "short.safetensors"))
    register_model(Registry(guide_home), "cn-short", tmp_path / "short.safetensors")
    with pytest.raises(SfumatoError) as caught:
        _inpaint(guided_context, {"controls": [{"kind": "canny", "image": "auto",
                                                "model": "cn-short"}]})
    assert caught.value.code is ErrorCode.CORRUPT_WEIGHTS
    assert "short.safetensors" in caught.value.message and "complete" in caught.value.message


def test_a_warm_image_prompt_reads_no_adapter_from_disk(
    guided_context: Callable[..., Any], guide_home: Path, guide_provider: Any, tmp_path: Path,
) -> None:
    from sfumato.core.models.model_add import register_model
    from sfumato.core.models.registry import Registry

    from tests.support.tiny_models import build_tiny_ip_adapter

    adapter = build_tiny_ip_adapter("sdxl", tmp_path / "ip-adapter_sdxl.safetensors")
    register_model(Registry(guide_home), "ip-warm", adapter)
    reference = _drawing(48, 40)
    reference[..., :3] = (200, 60, 90)
    reference[..., 3] = 255
    params = {"image_prompts": [{"image": 2, "weight": 0.8, "model": "ip-warm"}]}
    first = _inpaint(guided_context, params, [reference])
    assert any(k.startswith("ip-adapter:ip-warm:") for k in guide_provider.cache.keys())
    loads = guide_provider.cache.loads
    # other weights of the same shapes under the same name: a job that re-read the file
    # would draw something else
    build_tiny_ip_adapter("sdxl", adapter, seed=9)
    second = _inpaint(guided_context, params, [reference])
    assert guide_provider.cache.loads == loads  # nothing new loaded: all of it resident
    assert np.array_equal(_pixels(first), _pixels(second))
