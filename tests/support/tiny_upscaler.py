"""A tiny random-weight SRVGGNetCompact upscaler, saved as .safetensors in the layout the
real Real-ESRGAN compact models use, so spandrel detects and loads it like a real one."""

from __future__ import annotations

from pathlib import Path


def build_tiny_upscaler(dest: Path, *, scale: int = 2, features: int = 8, convs: int = 2) -> Path:
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(0)
    tensors: dict[str, torch.Tensor] = {}

    def conv(index: int, c_in: int, c_out: int) -> None:
        tensors[f"body.{index}.weight"] = torch.randn(c_out, c_in, 3, 3, generator=generator) * 0.1
        tensors[f"body.{index}.bias"] = torch.zeros(c_out)

    conv(0, 3, features)
    index = 1
    for _ in range(convs):
        tensors[f"body.{index}.weight"] = torch.full((features,), 0.25)  # PReLU slopes
        conv(index + 1, features, features)
        index += 2
    tensors[f"body.{index}.weight"] = torch.full((features,), 0.25)
    conv(index + 1, features, 3 * scale * scale)
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(dest))
    return dest
