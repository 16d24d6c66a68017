"""Weight files are read as data only: code hidden in a pickle never runs."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from sfumato.bridge.protocol import ErrorCode
from sfumato.core.errors import SfumatoError
from sfumato.core.models.weights import load_state_dict, read_metadata

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


class _Payload:
    """Unpickling this in full would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (str(self.marker), "w")


def _state() -> dict[str, torch.Tensor]:
    return {"conv.weight": torch.arange(6.0).reshape(2, 3), "conv.bias": torch.ones(2)}


@pytest.mark.parametrize("allow_pickle", [False, True])
def test_plain_pickle_is_refused_and_never_runs(tmp_path: Path, allow_pickle: bool) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pth"
    path.write_bytes(pickle.dumps({"weight": _Payload(marker)}))
    with pytest.raises(SfumatoError) as caught:
        load_state_dict(path, allow_pickle=allow_pickle)
    assert caught.value.code is ErrorCode.UNSAFE_WEIGHTS
    assert "safetensors" in caught.value.message
    assert not marker.exists()


def test_torch_zip_with_code_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    torch.save({"params_ema": {"w": torch.zeros(1), "x": _Payload(marker)}}, path)
    with pytest.raises(SfumatoError) as caught:
        load_state_dict(path)
    assert caught.value.code is ErrorCode.UNSAFE_WEIGHTS
    assert "unpickling" in caught.value.message
    assert not marker.exists()


def test_plain_torch_save_state_dict_loads(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    torch.save(_state(), path)
    loaded = load_state_dict(path)
    assert loaded.keys() == _state().keys()
    assert torch.equal(loaded["conv.weight"], _state()["conv.weight"])


@pytest.mark.parametrize("wrapper", ["params_ema", "params", "state_dict", "model"])
def test_training_wrappers_are_unwrapped(tmp_path: Path, wrapper: str) -> None:
    path = tmp_path / "model.ckpt"
    torch.save({wrapper: {f"module.{k}": v for k, v in _state().items()}, "epoch": 3}, path)
    assert load_state_dict(path).keys() == _state().keys()


def test_safetensors_round_trip_with_metadata(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file(_state(), str(path), metadata={"sfumato.scale": "2"})
    assert torch.equal(load_state_dict(path)["conv.bias"], torch.ones(2))
    assert read_metadata(path)["sfumato.scale"] == "2"


@pytest.mark.parametrize("keep", [0, 5, 60, -7])
def test_truncated_safetensors_is_corrupt(tmp_path: Path, keep: int) -> None:
    good = tmp_path / "good.safetensors"
    save_file(_state(), str(good))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(good.read_bytes()[:keep])
    with pytest.raises(SfumatoError) as caught:
        load_state_dict(bad)
    assert caught.value.code is ErrorCode.CORRUPT_WEIGHTS
    assert "re-download or re-import" in caught.value.message


def test_truncated_torch_zip_is_corrupt(tmp_path: Path) -> None:
    good = tmp_path / "good.pth"
    torch.save(_state(), good)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(good.read_bytes()[:200])
    with pytest.raises(SfumatoError) as caught:
        load_state_dict(bad)
    assert caught.value.code is ErrorCode.CORRUPT_WEIGHTS


def test_missing_and_unknown_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SfumatoError) as missing:
        load_state_dict(tmp_path / "nope.safetensors")
    assert missing.value.code is ErrorCode.CORRUPT_WEIGHTS
    odd = tmp_path / "model.onnx"
    odd.write_bytes(b"\0" * 16)
    with pytest.raises(SfumatoError):
        load_state_dict(odd)


def test_no_full_unpickling_anywhere_in_core() -> None:
    forbidden = ("pickle" + ".load", "weights_only" + "=False")
    hits = [
        f"{path.relative_to(ROOT)}: {word}"
        for path in (ROOT / "core").rglob("*.py")
        for word in forbidden
        if word in path.read_text()
    ]
    assert hits == []


def test_legacy_torch_file_needs_allow_pickle_and_then_stays_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "old.pth"
    torch.save(_state(), path, _use_new_zipfile_serialization=False)
    with pytest.raises(SfumatoError) as caught:
        load_state_dict(path)
    assert caught.value.code is ErrorCode.UNSAFE_WEIGHTS
    assert load_state_dict(path, allow_pickle=True).keys() == _state().keys()
