"""SUPIR as an upscale model: a tiny random-weight SUPIR checkpoint in the published (sgm)
layout, registered with `models add` beside a tiny SDXL base and run through the real loader,
the upscale task and the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.raster import Layout, Raster
from sfumato.core.errors import JobCancelled, SfumatoError
from sfumato.core.task_api import CancelToken, TaskContext

from tests.support.daemon_process import DaemonProcess
from tests.support.tiny_models import build_tiny_model
from tests.support.tiny_supir import build_tiny_supir, tiny_supir_keys

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "data"
WIDTH, HEIGHT = 40, 30
STEPS = 2


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A model store with a tiny SDXL and a tiny SUPIR, registered as `models add` does."""
    from sfumato.core.config import Settings
    from sfumato.core.models.model_add import register_model
    from sfumato.core.models.provider import WorkerModels
    from sfumato.core.models.registry import Registry

    root = tmp_path_factory.mktemp("supir")
    sdxl = build_tiny_model("sdxl", root / "tiny-sdxl")
    supir = build_tiny_supir(sdxl, root / "SUPIR-v0Q-tiny.safetensors")
    home = root / "home"
    registry = Registry(home)
    register_model(registry, "base", sdxl)
    entry = register_model(registry, "supir", supir, base="base")  # models add --base base
    torch.set_num_threads(1)
    provider = WorkerModels(Settings(home=home, endpoint="tcp://127.0.0.1:0"), "cpu")
    return {"sdxl": sdxl, "supir": supir, "entry": entry, "provider": provider, "root": root}


def _raster() -> Raster:
    photo = Image.open(DATA / "photo.png").convert("RGBA").resize((WIDTH, HEIGHT))
    pixels = np.asarray(photo).copy()
    pixels[:, :6, 3] = 0  # a transparent strip: it stays transparent
    return Raster(WIDTH, HEIGHT, Layout.RGBA8, pixels.tobytes())


def _upscale(store: dict[str, Any], params: dict[str, Any], model: str = "supir",
             **extra: Any) -> Any:
    from sfumato.core.tasks import upscale

    params = {"refine_steps": STEPS, "refine_seed": 3, **params}
    ctx = TaskContext(params=params, rasters=[_raster()], model_id=model,
                      models=store["provider"], **extra)
    return upscale.run(ctx)


def _pixels(output: Any) -> np.ndarray:
    raster = output.rasters[0]
    return np.frombuffer(raster.data, np.uint8).reshape(raster.height, raster.width, 4)


def test_models_add_knows_supir_and_every_tensor_finds_its_module(store: dict[str, Any]
                                                                    ) -> None:
    from diffusers import UNet2DConditionModel
    from sfumato.core.diffusion.supir.control_adapter import ControlEncoder, build_connectors
    from sfumato.core.diffusion.supir.key_mapping import sort_keys

    assert store["entry"].kind == "supir" and store["entry"].format == "safetensors"
    assert store["entry"].config == "base"  # the SDXL base it runs over
    config = UNet2DConditionModel.from_config(
        UNet2DConditionModel.load_config(store["sdxl"] / "unet")).config
    keys = sort_keys(tiny_supir_keys(store["supir"]), config.layers_per_block)
    assert keys.unknown == []  # nothing unexpected
    assert set(keys.control) == set(ControlEncoder(config).state_dict())  # nothing missing
    assert set(keys.connectors) == {f"connectors.{k}" for k in build_connectors(config)
                                    .state_dict()}
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(store["sdxl"] / "vae")
    assert set(keys.encoder) == ({f"encoder.{k}" for k in vae.encoder.state_dict()}
                                 | {f"quant_conv.{k}" for k in vae.quant_conv.state_dict()})
    assert len(keys.base) == 4  # the SDXL base's own tensors, set aside


def test_the_full_size_sdxl_control_model_maps_name_for_name() -> None:
    # SUPIR-v0Q/v0F's control model is SDXL's encoder half: built without memory (meta) from
    # SDXL's published UNet config, every one of its tensors named the sgm way (written
    # independently in tests/support) maps back onto it exactly
    import torch
    from diffusers import UNet2DConditionModel
    from sfumato.core.diffusion.supir.control_adapter import ControlEncoder
    from sfumato.core.diffusion.supir.key_mapping import sort_keys

    from tests.support.tiny_supir import control_name

    with torch.device("meta"):
        unet = UNet2DConditionModel(
            in_channels=4, out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            block_out_channels=(320, 640, 1280), layers_per_block=2,
            attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
            transformer_layers_per_block=(1, 2, 10), use_linear_projection=True,
            addition_embed_type="text_time", addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=2816)
        ours = set(ControlEncoder(unet.config).state_dict())
    published = ["model.control_model." + control_name(name, 2) for name in ours]
    assert "model.control_model.input_blocks.8.1.transformer_blocks.9.attn2.to_v.weight" \
        in published  # the last level's tenth transformer block
    keys = sort_keys(published, 2)
    assert set(keys.control) == ours and not keys.unknown


@pytest.mark.parametrize(("scale", "size"), [(2, (80, 60)), (1.5, (60, 45))])
def test_supir_upscales_to_the_size_asked(store: dict[str, Any], scale: float,
                                          size: tuple[int, int]) -> None:
    events: list[tuple[int, int, str]] = []
    output = _upscale(store, {"scale": scale, "refine_prompt": "a harbour"},
                      progress=lambda *e: events.append(e))
    assert (output.rasters[0].width, output.rasters[0].height) == size
    assert output.info["model"] == "supir" and output.info["scale"] == scale
    pixels = _pixels(output)
    edge = round(6 * scale)
    assert pixels[:, : edge - 2, 3].max() == 0 and pixels[:, edge + 2 :, 3].min() == 255
    bicubic = np.asarray(Image.fromarray(np.asarray(_raster_image())).resize(size,
                                                                            Image.BICUBIC))
    assert np.abs(pixels[..., :3].astype(int) - bicubic[..., :3]).mean() > 2  # restored
    assert [e[:2] for e in events] == [(i, STEPS) for i in range(1, STEPS + 1)]


def _raster_image() -> Image.Image:
    raster = _raster()
    return Image.frombytes("RGBA", (raster.width, raster.height), raster.data)


def test_a_seed_repeats_its_picture_and_tiles_cover_a_large_output(store: dict[str, Any]
                                                                   ) -> None:
    first, again = _upscale(store, {"scale": 2}), _upscale(store, {"scale": 2})
    assert np.array_equal(_pixels(first), _pixels(again))
    other = _upscale(store, {"scale": 2, "refine_seed": 4})
    assert not np.array_equal(_pixels(first), _pixels(other))
    # 64 px tiles (8 latent px) over the 256 x 320 working size: many tiles, same size out
    tiled = _upscale(store, {"scale": 2, "refine_tile": 64})
    assert _pixels(tiled).shape == _pixels(first).shape
    assert not np.array_equal(_pixels(tiled), _pixels(first))


def test_cancel_stops_supir_within_a_tile(store: dict[str, Any]) -> None:
    from sfumato.core.diffusion.tiled_refine import plan_tiles

    # 64 px tiles: the 256 x 320 working size is a 32 x 40 latent in 8 px tiles
    tiles = len(plan_tiles(40, 32, 8, 4))
    trip = 1 + tiles + 1 + 3  # before the run, step 1's tiles, its end, 3 tiles into step 2

    class Tripping:
        def __init__(self) -> None:
            self.asked = 0

        def is_set(self) -> bool:
            self.asked += 1
            return self.asked > trip

    token = Tripping()
    events: list[tuple[int, int, str]] = []
    with pytest.raises(JobCancelled):
        _upscale(store, {"scale": 2, "refine_steps": 6, "refine_tile": 64},
                 cancel=CancelToken(token), progress=lambda *e: events.append(e))
    assert tiles > 10 and [e[:2] for e in events] == [(1, 6)]  # step 2 never finished
    assert token.asked == trip + 1  # stopped at the first tile after the cancel


def test_out_of_memory_runs_again_in_smaller_tiles(store: dict[str, Any],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from sfumato.core.diffusion.supir.pipeline import SupirPipeline

    real = SupirPipeline.__call__
    tiles: list[int] = []

    def small_device(self: Any, *args: Any) -> Any:
        tiles.append(args[5])  # the device: no room for a tile above 32 latent px
        if args[5] > 32:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, *args)

    monkeypatch.setattr(SupirPipeline, "__call__", small_device)
    output = _upscale(store, {"scale": 2, "refine_tile": 1024})
    assert tiles == [128, 64, 32] and output.rasters[0].width == 80

    def no_room(self: Any, *args: Any) -> Any:
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(SupirPipeline, "__call__", no_room)
    with pytest.raises(SfumatoError) as full:
        _upscale(store, {"scale": 2})
    assert full.value.code is ErrorCode.OUT_OF_MEMORY


def test_wrong_kinds_and_pickles_are_refused_typed(store: dict[str, Any],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from sfumato.core.diffusion.supir.checkpoint import load_supir_weights
    from sfumato.core.models.model_add import describe_model

    with pytest.raises(SfumatoError) as wrong:  # an SDXL model is not an upscaler
        _upscale(store, {"scale": 2}, model="base")
    assert wrong.value.code is ErrorCode.WRONG_MODEL_KIND
    unet = store["sdxl"] / "unet" / "diffusion_pytorch_model.safetensors"
    with pytest.raises(SfumatoError) as not_supir:
        load_supir_weights(unet, "cpu", torch.float32)
    assert not_supir.value.code is ErrorCode.WRONG_MODEL_KIND

    from sfumato.core.models.model_add import register_model
    from sfumato.core.models.registry import Registry

    registry = Registry(store["root"] / "home")
    with pytest.raises(SfumatoError) as not_a_base:  # a SUPIR over a SUPIR
        register_model(registry, "again", store["supir"], base="supir")
    assert not_a_base.value.code is ErrorCode.WRONG_MODEL_KIND
    with pytest.raises(SfumatoError) as not_supir_base:  # --base for an SDXL model
        register_model(registry, "again", store["sdxl"], base="base")
    assert not_supir_base.value.code is ErrorCode.BAD_PARAMS

    tensors = {"state_dict": {"model.control_model.input_hint_block.0.weight": torch.ones(1)}}
    named = store["root"] / "SUPIR-v0Q.ckpt"
    unnamed = store["root"] / "restorer.ckpt"  # told by the names in its pickle, unexecuted
    for path in (named, unnamed):
        torch.save(tensors, path)

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the pickle was loaded")

    monkeypatch.setattr(torch, "load", never)
    for path in (named, unnamed):
        with pytest.raises(SfumatoError) as unsafe:
            describe_model("q", path)
        assert unsafe.value.code is ErrorCode.UNSAFE_WEIGHTS
        assert "SUPIR-v0Q.safetensors" in unsafe.value.message


def test_sfumato_upscale_with_a_supir_model(daemon: DaemonProcess, store: dict[str, Any],
                                            tmp_path: Path) -> None:
    daemon.add_model("base", store["sdxl"])
    daemon.add_model("supir-q", store["supir"])
    source = tmp_path / "small.png"
    _raster_image().convert("RGB").save(source)
    done = subprocess.run(
        [sys.executable, "-m", "sfumato.core", "upscale", str(source), "--model", "supir-q",
         "--prompt", "a harbour", "--scale", "2", "--refine-steps", "2", "-o",
         str(tmp_path / "big.png")], env=daemon.env(), capture_output=True, text=True,
        timeout=300)
    assert done.returncode == 0, done.stderr
    assert Image.open(tmp_path / "big.png").size == (80, 60)
