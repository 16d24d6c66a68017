"""ncnn model files: the `.param` graph text and the `.bin` weight blob, read as data.

Only what convolutional upscalers use is read: Convolution weights (a 4-byte storage tag, then
float16 or float32 values), their float32 biases and PReLU slopes (raw float32, no tag).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sfumato.bridge.protocol import ErrorCode
from sfumato.core.errors import SfumatoError

PARAM_MAGIC = "7767517"
TAG_FP16 = 0x01306B47
TAG_FP32 = (0x00000000, 0x0002C056)
TAG_INT8 = 0x000D4B38
_ARRAY_KEY_BASE = -23300  # ncnn writes array parameter `id` under the key -23300 - id


class NcnnFormatError(SfumatoError):
    """A .param/.bin pair this reader cannot understand."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.CORRUPT_WEIGHTS, message)


@dataclass(frozen=True)
class NcnnLayer:
    type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: dict[int, str]  # raw text; array parameters are stored under their plain id

    def int_param(self, key: int, default: int = 0) -> int:
        return int(self.params.get(key, default))

    def float_param(self, key: int, default: float = 0.0) -> float:
        return float(self.params.get(key, default))

    def array_param(self, key: int) -> list[float]:
        text = self.params.get(key)
        if text is None:
            return []
        count, *values = text.split(",")
        return [float(v) for v in values[: int(count)]]


def parse_param(text: str) -> list[NcnnLayer]:
    """The layers of a `.param` file, in file order (which is the order of the `.bin`)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != PARAM_MAGIC:
        raise NcnnFormatError(f"not an ncnn .param file (first line is not {PARAM_MAGIC})")
    try:
        layer_count, _blob_count = (int(v) for v in lines[1].split())
        layers = [_parse_layer(line) for line in lines[2:]]
    except (IndexError, ValueError) as exc:
        raise NcnnFormatError(f"malformed ncnn .param file ({exc})") from None
    if len(layers) != layer_count:
        raise NcnnFormatError(f".param announces {layer_count} layers but lists {len(layers)}")
    return layers


def _parse_layer(line: str) -> NcnnLayer:
    words = line.split()
    kind, name, n_in, n_out = words[0], words[1], int(words[2]), int(words[3])
    inputs = tuple(words[4 : 4 + n_in])
    outputs = tuple(words[4 + n_in : 4 + n_in + n_out])
    if len(outputs) != n_out:
        raise ValueError(f"layer {name} lists fewer blobs than it announces")
    params: dict[int, str] = {}
    for item in words[4 + n_in + n_out :]:
        key_text, value = item.split("=", 1)
        key = int(key_text)
        params[_ARRAY_KEY_BASE - key if key <= _ARRAY_KEY_BASE else key] = value
    return NcnnLayer(kind, name, inputs, outputs, params)


class BlobReader:
    """Reads the `.bin` front to back, the way ncnn's loader does; `finish` checks the end."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def tagged(self, count: int, what: str) -> np.ndarray:
        """A weight array that starts with its storage tag, in its stored float16/float32."""
        tag = int(np.frombuffer(self._take(4, what), dtype="<u4")[0])
        if tag == TAG_FP16:
            raw = self._take(_align4(count * 2), what)
            return np.frombuffer(raw, dtype="<f2", count=count).copy()
        if tag in TAG_FP32:
            return self.raw_f32(count, what)
        if tag == TAG_INT8:
            raise NcnnFormatError(
                f"{what} is int8-quantized; only float16/float32 ncnn models can be imported"
            )
        raise NcnnFormatError(
            f"{what} uses an unsupported ncnn storage (tag 0x{tag:08X}, e.g. a quantization "
            "table); only float16/float32 ncnn models can be imported"
        )

    def raw_f32(self, count: int, what: str) -> np.ndarray:
        return np.frombuffer(self._take(count * 4, what), dtype="<f4").copy()

    def finish(self) -> None:
        if self.offset != len(self.data):
            raise NcnnFormatError(
                f".bin has {len(self.data) - self.offset} bytes left over after the last layer; "
                "it does not belong to this .param"
            )

    def _take(self, size: int, what: str) -> bytes:
        end = self.offset + size
        if end > len(self.data):
            raise NcnnFormatError(f".bin ends inside {what}; the file is truncated")
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk


def _align4(size: int) -> int:
    return (size + 3) & ~3
