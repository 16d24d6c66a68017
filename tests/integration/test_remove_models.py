"""LaMa and MAT weights as an admin meets them: `models add` takes their .safetensors (detected
by spandrel, loaded strictly), refuses TorchScript and pickled ones saying what to get, and
`models scan` finds them where ComfyUI and IOPaint keep them. Full-size random networks in
the published key layouts stand in for the real downloads (no hub here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sfumato.bridge.protocol import ErrorCode
from sfumato.core.errors import SfumatoError
from sfumato.core.models.fill_run import fill_size
from sfumato.core.models.model_add import describe_model, register_sources
from sfumato.core.models.registry import Registry

from tests.support.tiny_fill import build_big_lama, build_mat, build_tiny_lama

pytestmark = pytest.mark.integration


def test_big_lama_in_its_published_layout_loads_through_spandrel(tmp_path: Path) -> None:
    from sfumato.core.models.fill_loader import fill_kind, load_fill_model

    # loaded once (describe_model, what `models add` runs, loads the same way)
    model = load_fill_model(build_big_lama(tmp_path / "big-lama.safetensors"))
    assert fill_kind(model) == "lama" and model.input_channels == 3
    blocks = [m for m in model.model.modules() if type(m).__name__ == "FFCResnetBlock"]
    assert len(blocks) == 18  # Big-LaMa's depth: spandrel's own fixed loader took it
    assert sum(p.numel() for p in model.model.parameters()) > 50_000_000


def test_mat_loads_through_spandrel_extra_arches(tmp_path: Path) -> None:
    # the generator's keys, as Places_512_FullData_G holds them
    entry = describe_model("mat", build_mat(tmp_path / "MAT_Places512_G_fp16.safetensors"))
    assert (entry.kind, entry.format) == ("mat", "safetensors")
    assert fill_size("mat", 300, 200, None) == (512, 512)  # MAT works on its square


def test_torchscript_and_pickled_fills_are_refused_saying_what_to_get(tmp_path: Path) -> None:
    import torch

    scripted = torch.jit.script(torch.nn.Conv2d(4, 3, 3))
    torchscript = tmp_path / "big-lama.pt"
    torch.jit.save(scripted, str(torchscript))
    with pytest.raises(SfumatoError) as caught:
        describe_model("lama", torchscript)
    assert caught.value.code is ErrorCode.UNSAFE_WEIGHTS
    assert "TorchScript" in caught.value.message
    assert "big-lama.safetensors" in caught.value.message

    tiny = build_tiny_lama(tmp_path / "tiny.safetensors")
    from safetensors.torch import load_file

    pickled = tmp_path / "lama.pth"
    torch.save(load_file(str(tiny)), str(pickled))  # a plain state dict, torch's zip format
    with pytest.raises(SfumatoError) as caught:
        describe_model("lama", pickled)
    assert caught.value.code is ErrorCode.UNSAFE_WEIGHTS
    assert ".safetensors only" in caught.value.message


def test_scan_finds_fills_where_comfyui_and_iopaint_keep_them(tmp_path: Path) -> None:
    import torch

    comfy = tmp_path / "ComfyUI" / "models"
    build_tiny_lama(comfy / "inpaint" / "lama-fourier.safetensors", blocks=1)
    iopaint = tmp_path / "cache"  # IOPaint's --model-dir (or ~/.cache)
    build_tiny_lama(iopaint / "torch" / "hub" / "checkpoints" / "big-lama.safetensors")
    torch.jit.save(torch.jit.script(torch.nn.Conv2d(4, 3, 3)),
                   str(iopaint / "torch" / "hub" / "checkpoints" / "big-lama.pt"))
    from safetensors.torch import load_file

    old = comfy / "inpaint" / "old"  # a pickled state dict, a level down
    old.mkdir()
    torch.save(load_file(str(build_tiny_lama(tmp_path / "tiny.safetensors"))),
               str(old / "lama.pth"))
    registry = Registry(tmp_path / "home")
    refused: list[str] = []
    found = register_sources(registry, comfy, refused=refused) + \
        register_sources(registry, iopaint, refused=refused)
    assert {(e.name, e.kind) for e in found} == {("lama-fourier", "lama"), ("big-lama", "lama")}
    assert all(e.path.endswith(".safetensors") for e in registry.entries())  # not the .pt
    # the pickled ones are named, each with what to get instead, never silently passed over
    assert len(refused) == 2, refused
    by_file = {line.split(":", 1)[0].rsplit("/", 1)[-1]: line for line in refused}
    assert set(by_file) == {"big-lama.pt", "lama.pth"}
    assert "TorchScript" in by_file["big-lama.pt"]
    assert ".safetensors only" in by_file["lama.pth"]


def test_models_scan_prints_what_it_could_not_add(tmp_path: Path) -> None:
    import torch

    fills = tmp_path / "cache" / "torch" / "hub" / "checkpoints"
    fills.mkdir(parents=True)
    torch.jit.save(torch.jit.script(torch.nn.Conv2d(4, 3, 3)), str(fills / "big-lama.pt"))
    done = subprocess.run([sys.executable, "-m", "sfumato.core", "models", "scan",
                           str(tmp_path / "cache")], capture_output=True, text=True,
                          env=dict(os.environ, SFUMATO_HOME=str(tmp_path / "home")),
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "not added" in done.stdout and "big-lama.pt" in done.stdout
    assert "big-lama.safetensors" in done.stdout  # what to get instead
    assert "no models found" not in done.stdout


def test_pull_knows_the_fills() -> None:
    from sfumato.core.models.pull import KNOWN_FILLS, pull_model

    assert set(KNOWN_FILLS) == {"lama", "mat"}
    assert all(url.endswith(".safetensors") for url in KNOWN_FILLS.values())
    with pytest.raises(SfumatoError) as caught:
        pull_model("no-such-model", Registry(Path("/nonexistent")))
    assert "lama" in caught.value.message and "mat" in caught.value.message

