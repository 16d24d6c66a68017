"""Speed options: precision, torch.compile, SDPA attention, VAE tiling and upscaler tile
batches, each with a default that is right for the device (see config.toml's [daemon]).

Defaults: bf16 on CUDA (fp16 on GPUs without bf16), fp32 on the CPU; no compile (it costs
tens of seconds per model and shape, cached under SFUMATO_HOME/cache/inductor when on); SDPA
attention everywhere; the VAE in tiles only above `vae_tiling_pixels`; upscaler tiles in
batches of 4 on CUDA, one at a time on the CPU (no gain there, more memory).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfumato.bridge.protocol import ErrorCode
from sfumato.core.errors import SfumatoError

log = logging.getLogger("sfumato.speed")

DTYPES = ("auto", "bf16", "fp16", "fp32")
CUDA_TILE_BATCH = 4
MAX_TILE_BATCH = 64
_FLUX_KINDS = frozenset({"flux", "flux-fill", "flux-kontext", "qwen-image-edit",
                         "qwen-image-edit-plus", "flux2-klein"})  # bf16, never fp16


@dataclass(frozen=True)
class SpeedOptions:
    dtype: str = "auto"
    compile: bool = False
    upscale_batch: int = 0  # 0 = auto
    vae_tiling_pixels: int = 2048 * 2048  # 0 = never tile the VAE
    home: Path | None = None  # where compiled code is cached

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise SfumatoError(ErrorCode.BAD_PARAMS,
                               f"dtype {self.dtype!r} is not one of {', '.join(DTYPES)} "
                               "(config.toml [daemon])")
        if not 0 <= self.upscale_batch <= MAX_TILE_BATCH:
            raise SfumatoError(ErrorCode.BAD_PARAMS,
                               f"upscale_batch must be 0 (auto) to {MAX_TILE_BATCH} "
                               "(config.toml [daemon])")

    @classmethod
    def from_settings(cls, settings: Any) -> SpeedOptions:
        return cls(
            dtype=str(getattr(settings, "dtype", "auto")),
            compile=bool(getattr(settings, "compile", False)),
            upscale_batch=int(getattr(settings, "upscale_batch", 0)),
            vae_tiling_pixels=int(getattr(settings, "vae_tiling_pixels", 2048 * 2048)),
            home=getattr(settings, "home", None),
        )


# --- precision ---------------------------------------------------------------------------


def pipeline_dtype(options: SpeedOptions, device: str, kind: str) -> Any:
    """The torch dtype a diffusion pipeline runs in on `device`."""
    import torch

    name = options.dtype
    if name == "auto":
        name = _cuda_half() if device.startswith("cuda") else "fp32"
    if name == "fp16" and kind in _FLUX_KINDS:
        log.warning("FLUX and Qwen-Image overflow in fp16; running it in bf16")
        name = "bf16"
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]


def upscaler_dtype(options: SpeedOptions, device: str, model: Any) -> Any:
    """The dtype an upscaler runs in: fp16 on CUDA by default (the same speed as bf16 with
    three more bits, which 16-bit layers keep), fp32 on the CPU; an explicit setting wins
    where the architecture supports it."""
    import torch

    name = options.dtype
    if name == "auto":
        name = "fp16" if device.startswith("cuda") else "fp32"
    if name == "fp16" and not getattr(model, "supports_half", False):
        name = "fp32"
    if name == "bf16" and not getattr(model, "supports_bfloat16", False):
        name = "fp32"
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]


def _cuda_half() -> str:
    import torch

    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp16"


# --- upscaler tile batches ------------------------------------------------------------------


def tiles_per_batch(options: SpeedOptions, device: str, requested: Any = None) -> int:
    """Tiles per forward pass: the request's `batch`, else the daemon's, else by device."""
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or not (
            1 <= requested <= MAX_TILE_BATCH
        ):
            raise SfumatoError(ErrorCode.BAD_PARAMS,
                               f"batch must be a whole number from 1 to {MAX_TILE_BATCH}, "
                               f"got {requested!r}")
        return requested
    if options.upscale_batch:
        return options.upscale_batch
    return CUDA_TILE_BATCH if device.startswith("cuda") else 1


# --- compile ---------------------------------------------------------------------------------


def use_inductor_cache(home: Path | None) -> None:
    """Keep torch.compile's generated code under SFUMATO_HOME, so a restart reuses it.
    (Set even when already set: torch itself fills the variable with its default on first
    use.)"""
    if home is not None:
        folder = Path(home) / "cache" / "inductor"
        folder.mkdir(parents=True, exist_ok=True)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)


def compile_module(module: Any, options: SpeedOptions) -> bool:
    """torch.compile `module` in place when the option is on (compiling happens on its first
    call; `FirstCallTimer` measures that). Returns whether it was compiled."""
    if not options.compile or getattr(module, "_sfumato_compiled", False):
        return False
    use_inductor_cache(options.home)
    module.compile()
    module._sfumato_compiled = True
    return True


class FirstCallTimer:
    """Seconds taken by a module's first call after compiling (compile + one run), kept on
    the module as `_sfumato_compile_s` so status and benchmarks can report it."""

    def __init__(self, module: Any) -> None:
        import torch

        self.module = module
        # the hooks run inside the compiled call: keep them out of the traced graph
        self.handle = module.register_forward_pre_hook(torch.compiler.disable(self._start))
        self.done = module.register_forward_hook(torch.compiler.disable(self._stop))
        self._began = 0.0

    def _start(self, *_: Any) -> None:
        self._began = time.perf_counter()

    def _stop(self, *_: Any) -> None:
        self.module._sfumato_compile_s = time.perf_counter() - self._began
        log.info("compiled %s: first call took %.1f s", type(self.module).__name__,
                 self.module._sfumato_compile_s)
        self.handle.remove()
        self.done.remove()


# --- diffusion pipelines -------------------------------------------------------------------


def prepare_pipeline(pipe: Any, options: SpeedOptions) -> Any:
    """SDPA attention in the denoiser and VAE, the VAE-tiling threshold, and compile."""
    for name in ("unet", "transformer", "vae"):
        use_sdpa(getattr(pipe, name, None))
    pipe._sfumato_vae_tiling_pixels = options.vae_tiling_pixels
    denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    if denoiser is not None and compile_module(denoiser, options):
        FirstCallTimer(denoiser)
    return pipe


def use_sdpa(module: Any) -> None:
    """Swap diffusers' plain attention processors (explicit softmax, a full attention matrix
    in memory) for the SDPA one; FLUX's processors already call SDPA."""
    processors = getattr(module, "attn_processors", None)
    if not processors:
        return
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    if any(type(p) is AttnProcessor for p in processors.values()):
        module.set_attn_processor(
            {name: AttnProcessor2_0() if type(p) is AttnProcessor else p
             for name, p in processors.items()}
        )


def attention_kinds(module: Any) -> set[str]:
    """Class names of a module's attention processors (for status and tests)."""
    return {type(p).__name__ for p in (getattr(module, "attn_processors", None) or {}).values()}


def tile_vae_if_large(pipe: Any, width: int, height: int) -> bool:
    """Encode/decode in VAE tiles when the working size is above the threshold (a large crop
    whose latents would not fit at once); back to whole-image VAE for smaller ones, unless
    tiling was switched on for another reason (low memory). Returns whether it tiles."""
    vae = getattr(pipe, "vae", None)
    if vae is None or not hasattr(vae, "enable_tiling"):
        return False
    threshold = getattr(pipe, "_sfumato_vae_tiling_pixels", 0)
    if threshold and width * height > threshold:
        if not getattr(vae, "use_tiling", False):
            vae.enable_tiling()
            vae._sfumato_auto_tiled = True
    elif getattr(vae, "_sfumato_auto_tiled", False):
        vae.disable_tiling()
        vae._sfumato_auto_tiled = False
    return bool(getattr(vae, "use_tiling", False))


# --- upscalers ---------------------------------------------------------------------------------


def prepare_upscaler(model: Any, options: SpeedOptions) -> Any:
    """An upscaler (spandrel descriptor, already on its device) in the dtype the options
    pick, compiled when the option is on."""
    dtype = upscaler_dtype(options, model.device.type, model)
    if model.dtype != dtype:
        model.to(dtype)
    if compile_module(model.model, options):
        FirstCallTimer(model.model)
    return model


def speed_of(models: Any) -> SpeedOptions:
    """The options a task's model provider was set up with (defaults for bare providers)."""
    found = getattr(models, "speed", None)
    return found if isinstance(found, SpeedOptions) else SpeedOptions()
