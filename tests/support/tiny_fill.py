"""Random-weight LaMa networks from spandrel's own classes, saved as .safetensors in the
published checkpoint's key layout (`generator.model.N...`), so the real loader detects them.

`build_tiny_lama`: a narrow, shallow generator (8 base features, 2 FFC blocks) that runs in a
blink on the CPU. `build_big_lama`: Big-LaMa's exact shape (51 M parameters, fp16 on disk,
about 100 MB), which spandrel's own fixed loader takes: for the loading tests only.
`build_mat`: MAT's generator (spandrel_extra_arches has one fixed shape, 512² only), fp16 in
the published Places_512_FullData_G key layout; one pass takes 7-13 s on this CPU.
"""

from __future__ import annotations

from pathlib import Path


def build_tiny_lama(dest: Path, *, features: int = 8, blocks: int = 2, seed: int = 0) -> Path:
    import torch
    from sfumato.core.models.torchvision_guard import prepare_spandrel_import

    prepare_spandrel_import()
    from spandrel.architectures.LaMa.__arch.LaMa import FFCResNetGenerator

    torch.manual_seed(seed)
    generator = FFCResNetGenerator(4, 3, ngf=features, n_downsampling=3, n_blocks=blocks)
    return _save(generator.state_dict(), dest, torch.float32)


def build_big_lama(dest: Path, seed: int = 0) -> Path:
    import torch
    from sfumato.core.models.torchvision_guard import prepare_spandrel_import

    prepare_spandrel_import()
    from spandrel.architectures.LaMa import LaMa

    torch.manual_seed(seed)
    return _save(LaMa(in_nc=4, out_nc=3).model.state_dict(), dest, torch.float16)


def build_mat(dest: Path, seed: int = 0) -> Path:
    import torch
    from safetensors.torch import save_file
    from sfumato.core.models.torchvision_guard import prepare_spandrel_import

    prepare_spandrel_import()
    from spandrel_extra_arches.architectures.MAT import MAT

    torch.manual_seed(seed)
    state = MAT().state_dict()  # "model.synthesis..." here; the release drops "model."
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_file({key.removeprefix("model."): (v.half() if v.is_floating_point() else v)
               .contiguous() for key, v in state.items()}, str(dest))
    return dest


def _save(state: dict, dest: Path, dtype: object) -> Path:
    import torch
    from safetensors.torch import save_file

    tensors = {f"generator.model.{key.removeprefix('model.')}":
               (value.to(dtype) if value.is_floating_point() else value).contiguous()
               for key, value in state.items()}
    assert all(isinstance(v, torch.Tensor) for v in tensors.values())
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(dest))
    return dest
