"""The segment task on tiny random-weight SAM, SAM 2.1 and VitMatte models saved in the real
layout and loaded through the real loader. What an artist notices: the mask covers the layer
(or the crop around a rough selection) at the right place, clicks and boxes land where they
were made whatever the layer's size, a second click on the same layer does not re-encode it,
words on a model that cannot read them are refused naming the one that can. The only double
is a known mask injected at the model's boundary, for the exact-mask checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.raster import Layout
from sfumato.core.errors import SfumatoError
from sfumato.core.pixels.arrays import array_to_raster, raster_to_array
from sfumato.core.task_api import TaskContext, TaskOutput
from sfumato.core.tasks import segment

from tests.support.tiny_segmenters import SIDE, segmentation_home

pytestmark = pytest.mark.integration

HEIGHT, WIDTH = 101, 77  # odd, and taller than wide: SAM pads, SAM 2 stretches


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import torch
    from sfumato.core.config import Settings
    from sfumato.core.models.provider import WorkerModels

    torch.set_num_threads(1)
    home = segmentation_home(tmp_path_factory.mktemp("segment-home"))
    return WorkerModels(Settings(home=home, endpoint="tcp://127.0.0.1:0"), "cpu")


def _layer(height: int = HEIGHT, width: int = WIDTH, seed: int = 0) -> np.ndarray:
    layer = np.full((height, width, 4), 255, np.uint8)
    layer[..., :3] = np.random.default_rng(seed).integers(0, 256, (height, width, 3))
    return layer


def _run(provider: Any, params: dict[str, Any], layer: np.ndarray, model: str | None,
         rough: np.ndarray | None = None) -> TaskOutput:
    rasters = [array_to_raster(layer, Layout.RGBA8)]
    if rough is not None:
        rasters.append(array_to_raster(rough, Layout.GRAY8))
    return segment.run(TaskContext(params=params, rasters=rasters, model_id=model,
                                   models=provider))


def _mask(result: TaskOutput) -> np.ndarray:
    (raster,) = result.rasters
    assert raster.layout is Layout.GRAY8
    return raster_to_array(raster)[..., 0]


def test_models_add_knows_segmenters_and_matting(provider: Any) -> None:
    kinds = {e.name: (e.kind, e.format) for e in provider.registry.entries()}
    assert kinds == {"sam": ("segmenter", "transformers"), "sam2": ("segmenter", "transformers"),
                     "sam3": ("segmenter", "transformers"),
                     "vitmatte": ("matting", "transformers")}


def test_a_pickle_only_segmenter_is_refused_before_loading(provider: Any,
                                                           tmp_path: Path) -> None:
    from sfumato.core.models.registry import ModelEntry
    from sfumato.core.models.segmenter_loader import load_segmenter

    folder = tmp_path / "sam-pickle"
    folder.mkdir()
    config = Path(provider.registry.get("sam").path) / "config.json"
    (folder / "config.json").write_text(config.read_text())
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(SfumatoError) as refused:
        load_segmenter(ModelEntry("bad", "segmenter", str(folder), "transformers"), "cpu")
    assert refused.value.code is ErrorCode.UNSAFE_WEIGHTS
    assert "pytorch_model.bin" in str(refused.value)


@pytest.mark.parametrize("model", ["sam", "sam2"])
@pytest.mark.parametrize("params", [{}, {"points": [[30, 40, 1]]}, {"box": [10, 20, 40, 40]},
                                    {"points": [[30, 40], [5, 5, 0]], "box": [10, 20, 40, 40]}],
                         ids=["subject", "point", "box", "points-and-box"])
def test_the_mask_covers_the_layer(provider: Any, model: str, params: dict[str, Any]) -> None:
    result = _run(provider, params, _layer(), model)
    mask = _mask(result)
    assert mask.shape == (HEIGHT, WIDTH)
    assert set(np.unique(mask)) <= {0, 255}  # hard edges unless soft is asked for
    assert result.info["offset"] == [0, 0] and result.info["model"] == model


def test_a_rough_selection_crops_the_work_and_places_the_mask(provider: Any) -> None:
    rough = np.zeros((HEIGHT, WIDTH), np.uint8)
    rough[40:60, 30:50] = 255
    result = _run(provider, {"context": 8}, _layer(), "sam2", rough)
    assert result.info["offset"] == [22, 32]
    assert _mask(result).shape == (20 + 16, 20 + 16)


class KnownMask:
    """The double: the model path answers with a known mask of the picture it was given, and
    records what reached it."""

    def __init__(self, segmenter: Any, pattern: np.ndarray) -> None:
        self.segmenter, self.pattern, self.calls = segmenter, pattern, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.segmenter, name)

    def segment(self, rgba8: np.ndarray, prompts: Any) -> np.ndarray:
        self.calls.append((rgba8.copy(), prompts))
        return self.pattern[: rgba8.shape[0], : rgba8.shape[1]].copy()


def test_a_known_mask_comes_back_exactly_where_the_model_saw_it(provider: Any,
                                                                monkeypatch: Any) -> None:
    layer = _layer()
    pattern = np.random.default_rng(3).random((HEIGHT, WIDTH)) > 0.5
    double = KnownMask(provider.load(provider.registry.get("sam2")), pattern)
    real_load = provider.load
    monkeypatch.setattr(provider, "load",
                        lambda e: double if e.kind == "segmenter" else real_load(e))
    rough = np.zeros((HEIGHT, WIDTH), np.uint8)
    rough[50:70, 20:31] = 255
    result = _run(provider, {"context": 5, "points": [[25, 60, 1]]}, layer, None, rough)
    x, y = result.info["offset"]
    assert (x, y) == (15, 45)
    (picture, prompts), = double.calls
    assert np.array_equal(picture, layer[45:75, 15:36])  # the crop the model saw
    assert prompts.points == ((10.0, 15.0, 1),)  # the click, in the crop's pixels
    assert np.array_equal(_mask(result), pattern[:30, :21] * np.uint8(255))


@pytest.mark.parametrize("height,width", [(HEIGHT, WIDTH), (63, 200), (1, 9), (SIDE, SIDE)])
def test_clicks_and_boxes_reach_the_model_where_they_were_made(provider: Any, height: int,
                                                                width: int) -> None:
    """Our mapping into the model's pixels is transformers' own (SamProcessor,
    Sam2Processor), and maps back to the layer's pixels exactly."""
    import torch
    from transformers import SamImageProcessor, SamProcessor
    from transformers.models.sam2.processing_sam2 import Sam2Processor

    points = np.array([[0.0, 0.0], [width - 1, height - 1], [width / 3, height / 7],
                       [width, height]])
    sam = provider.load(provider.registry.get("sam"))
    sam2 = provider.load(provider.registry.get("sam2"))
    reference = SamProcessor(SamImageProcessor(size={"longest_edge": SIDE}))
    expected = reference._normalize_coordinates(SIDE, points, (height, width))
    assert np.allclose(sam.to_model(points, height, width), expected, rtol=0, atol=1e-9)
    expected2 = Sam2Processor._normalize_coordinates(None, SIDE, torch.tensor(points),
                                                     (height, width))
    assert np.allclose(sam2.to_model(points, height, width), expected2.numpy(), atol=1e-4)
    for model in (sam, sam2):
        back = model.from_model(model.to_model(points, height, width), height, width)
        assert np.allclose(back, points, rtol=0, atol=1e-9)


def test_the_decoder_gets_the_click_and_box_in_model_pixels(provider: Any,
                                                            monkeypatch: Any) -> None:
    sam = provider.load(provider.registry.get("sam"))
    seen: list[Any] = []
    real = sam.decode

    def recording(embeddings: Any, points: Any, labels: Any, box: Any, multimask: bool) -> Any:
        seen.append((points, labels, box, multimask))
        return real(embeddings, points, labels, box, multimask)

    monkeypatch.setattr(sam, "decode", recording)
    rough = np.zeros((HEIGHT, WIDTH), np.uint8)
    rough[10:90, 5:70] = 255  # crop with context 3: x 2..73, y 7..93 (71 x 86)
    _run(provider, {"context": 3, "points": [[40, 50, 0]], "box": [6, 11, 60, 70]}, _layer(),
         "sam", rough)
    ((points, labels, box, multimask),) = seen
    scale = SIDE / 86  # SAM: the crop's longest side (86) becomes the working size
    scaled_w = int(71 * scale + 0.5)
    assert np.allclose(points, [[(40 - 2) * scaled_w / 71, (50 - 7) * SIDE / 86]])
    assert labels.tolist() == [0] and not multimask
    assert np.allclose(box, [4 * scaled_w / 71, 4 * SIDE / 86, 64 * scaled_w / 71,
                             74 * SIDE / 86])


def test_a_second_prompt_on_the_same_layer_skips_the_image_encoder(provider: Any) -> None:
    sam2 = provider.load(provider.registry.get("sam2"))
    layer = _layer(seed=7)
    before = sam2.encoder_runs
    first = _mask(_run(provider, {"points": [[10, 10]]}, layer, "sam2"))
    _run(provider, {"box": [5, 5, 30, 30]}, layer, "sam2")
    assert sam2.encoder_runs == before + 1
    again = _mask(_run(provider, {"points": [[10, 10]]}, layer, "sam2"))
    assert np.array_equal(first, again)  # the cached embeddings give the same answer
    changed = layer.copy()
    changed[50, 50, 0] ^= 0xFF  # a new layer version
    _run(provider, {"points": [[10, 10]]}, changed, "sam2")
    assert sam2.encoder_runs == before + 2


@pytest.mark.parametrize("model", ["sam", "sam2"])
def test_words_on_a_model_that_cannot_read_them_name_the_one_that_can(provider: Any,
                                                                      model: str) -> None:
    with pytest.raises(SfumatoError) as refused:
        _run(provider, {"text": "the cat"}, _layer(), model)
    assert refused.value.code is ErrorCode.WRONG_MODEL_KIND
    assert "SAM 3" in str(refused.value) and "segmenter" in str(refused.value)


def test_soft_edges_come_from_the_matting_model_along_the_edge_only(provider: Any) -> None:
    from sfumato.core.models.matting_run import edge_band

    layer = _layer()
    hard = _mask(_run(provider, {"box": [10, 20, 40, 40]}, layer, "sam2"))
    soft = _mask(_run(provider, {"box": [10, 20, 40, 40], "soft": True}, layer, "sam2"))
    assert ((soft > 0) & (soft < 255)).any()  # soft values exist
    from sfumato.core.pixels.masks import max_filter

    band = edge_band(HEIGHT, WIDTH)
    edge = max_filter(hard, band) != 255 - max_filter(255 - hard, band)
    assert np.array_equal(soft[~edge], hard[~edge])  # away from the edge: the hard mask


def test_soft_without_a_matting_model_warns_and_stays_hard(provider: Any,
                                                           monkeypatch: Any) -> None:
    monkeypatch.setattr(provider, "candidates", lambda kinds: [
        e for e in provider.registry.entries() if e.kind in kinds and e.kind != "matting"])
    result = _run(provider, {"box": [10, 20, 40, 40], "soft": True}, _layer(), "sam")
    assert set(np.unique(_mask(result))) <= {0, 255}
    assert any("matting" in w for w in result.info["warnings"])


@pytest.mark.parametrize("params", [
    {"points": [[500, 5]]}, {"points": [[5, 5, 2]]}, {"points": [["a", 5]]},
    {"box": [5, 5, 0, 10]}, {"box": [200, 200, 5, 5]}, {"points": "5,5"}])
def test_bad_prompts_are_refused_saying_what_is_wanted(provider: Any,
                                                       params: dict[str, Any]) -> None:
    with pytest.raises(SfumatoError) as refused:
        _run(provider, params, _layer(), "sam2")
    assert refused.value.code is ErrorCode.BAD_PARAMS


@pytest.mark.parametrize("params", [{"text": "all windows"},
                                    {"text": "the cat", "box": [5, 5, 40, 60]}, {}],
                         ids=["words", "words-and-box", "subject"])
def test_sam3_selects_by_words(provider: Any, monkeypatch: Any, params: dict[str, Any]) -> None:
    """With words and no model named, the SAM 3 runs; the words reach its text encoder as
    its tokenizer makes them, the box normalised as Sam3Processor does."""
    sam3 = provider.load(provider.registry.get("sam3"))
    seen: list[Any] = []
    real = sam3.decode_text

    def recording(embeddings: Any, ids: Any, attention: Any, box: Any) -> Any:
        seen.append((ids, box))
        return real(embeddings, ids, attention, box)

    monkeypatch.setattr(sam3, "decode_text", recording)
    if "box" in params and not _torchvision_works():
        with pytest.raises(SfumatoError) as refused:  # SAM 3 pools box features with it
            _run(provider, params, _layer(), None)
        assert refused.value.code is ErrorCode.MISSING_DEPENDENCY
        assert "torchvision" in str(refused.value) and "words alone" in str(refused.value)
        return
    result = _run(provider, params, _layer(), None if params else "sam3")
    assert _mask(result).shape == (HEIGHT, WIDTH) and result.info["model"] == "sam3"
    ((ids, box),) = seen
    words = params.get("text", "the main subject")
    assert sam3.tokenizer.decode(ids[0], skip_special_tokens=True).replace(" ", "") == \
        words.replace(" ", "")
    if "box" in params:
        assert np.allclose(box, [25 / WIDTH, 35 / HEIGHT, 40 / WIDTH, 60 / HEIGHT])


def test_sam3_refuses_clicks_naming_the_models_that_take_them(provider: Any) -> None:
    with pytest.raises(SfumatoError) as refused:
        _run(provider, {"text": "cat", "points": [[5, 5]]}, _layer(), "sam3")
    assert refused.value.code is ErrorCode.BAD_PARAMS and "SAM 2.1" in str(refused.value)


def _torchvision_works() -> bool:
    try:
        import torchvision.ops  # noqa: F401
    except ImportError:
        return False
    return True


def test_transparent_pixels_reach_the_model_as_mid_grey(provider: Any) -> None:
    """Whatever colour a transparent pixel holds, the model sees grey there, not that colour;
    an opaque layer is seen as it is."""
    sam2 = provider.load(provider.registry.get("sam2"))
    layer = np.zeros((SIDE * 2, SIDE * 2, 4), np.uint8)
    layer[..., 0], layer[:, SIDE:, 3] = 255, 255  # all red; the left half transparent
    seen = sam2.model_input(layer)
    assert np.abs(seen[:, : SIDE // 2 - 1].astype(int) - 128).max() <= 1
    assert (seen[:, SIDE // 2 + 1:] == (255, 0, 0)).all()
    layer[..., 3] = 255
    assert (sam2.model_input(layer) == (255, 0, 0)).all()
