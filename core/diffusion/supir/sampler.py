"""SUPIR's restoration-guided sampler (RestoreEDMSampler), with its published defaults.

An Euler sampler in the EDM formulation over SDXL's own 1000 discrete noise levels: each step
adds a little fresh noise (churn), predicts the clean latent with classifier-free guidance
whose scale moves linearly with the noise level, optionally pulls that prediction towards the
low-quality picture's latent while the noise is high (restoration guidance), and steps.

For outputs larger than one tile the latent is denoised tile by tile at every step, tiles
cross-faded with the same weights as the tiled refine, so every tile sees the same step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sfumato.bridge.geometry import Rect
from sfumato.core.diffusion.tiled_refine import blend_weights, plan_tiles

TRAIN_STEPS = 1000
BETA_START, BETA_END = 0.00085, 0.012  # SDXL's schedule
SIGMA_MAX = 14.6146  # the largest of SDXL's noise levels, which the schedules are scaled by
RESTORE_UNTIL = 0.05  # restoration guidance stops below this noise level


PUBLISHED_STEPS = 50  # SUPIR's test.py; the upscale task takes its steps from its own params


@dataclass(frozen=True)
class SamplerSettings:
    """SUPIR's published defaults (its test.py) but the steps: churn 5, noise 1.01, guidance
    rising from 1 to 4 as the noise falls, restoration guidance off, full control."""

    steps: int
    churn: float = 5.0
    noise: float = 1.01
    guidance: float = 4.0  # at the lowest noise
    guidance_start: float = 1.0  # at the highest noise
    restore: float = -1.0  # restoration guidance's power; <= 0: off
    control_scale: float = 1.0


# (latent, sigma) -> the clean latent predicted, guided
Denoiser = Callable[[torch.Tensor, torch.Tensor, "Window"], torch.Tensor]


@dataclass(frozen=True)
class Window:
    """The part of the latent a denoiser call covers (the whole latent when untiled)."""

    top: int
    left: int
    height: int
    width: int

    def of(self, latent: torch.Tensor) -> torch.Tensor:
        return latent[..., self.top:self.top + self.height, self.left:self.left + self.width]


def discrete_sigmas() -> torch.Tensor:
    """SDXL's 1000 noise levels, lowest first."""
    betas = torch.linspace(BETA_START**0.5, BETA_END**0.5, TRAIN_STEPS, dtype=torch.float64) ** 2
    alphas = torch.cumprod(1.0 - betas, dim=0)
    return ((1 - alphas) / alphas).sqrt().float()


def step_sigmas(steps: int) -> torch.Tensor:
    """The noise levels of `steps` steps, highest first, then 0."""
    chosen = np.linspace(TRAIN_STEPS - 1, 0, steps, endpoint=False).astype(int)[::-1].copy()
    sigmas = discrete_sigmas()[torch.from_numpy(chosen)].flip(0)
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def timestep_of(sigma: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """The discrete step whose noise level is nearest `sigma` (the UNet's time input)."""
    return (sigma.reshape(1, -1) - table.reshape(-1, 1).to(sigma)).abs().argmin(dim=0)


def guidance_scale(settings: SamplerSettings, sigma: float) -> float:
    return (settings.guidance_start - settings.guidance) * sigma / SIGMA_MAX + settings.guidance


def sample(denoise: Denoiser, noise: torch.Tensor, centre: torch.Tensor,
           settings: SamplerSettings, generator: torch.Generator, *, tile: int | None,
           on_step: Callable[[int, int], None],
           on_tile: Callable[[], None] = lambda: None) -> torch.Tensor:
    """The restored latent from pure `noise` (1, C, h, w), guided towards `centre` (the
    picture's own latent). `tile` (latent px): denoise in overlapping tiles of that side.
    `on_step(done, total)` runs after every step, `on_tile()` before every tile's denoiser
    call (either may raise to cancel: a step of a large picture is many calls)."""
    sigmas = step_sigmas(settings.steps).to(noise.device)
    x = noise * math.sqrt(1.0 + float(sigmas[0]) ** 2)
    height, width = x.shape[-2:]
    windows, weights = _windows(height, width, tile, x)
    for i in range(len(sigmas) - 1):
        sigma, following = float(sigmas[i]), float(sigmas[i + 1])
        gamma = min(settings.churn / (len(sigmas) - 1), 2**0.5 - 1)
        sigma_hat = sigma * (gamma + 1.0)
        if gamma > 0:  # the fresh noise is drawn for the whole latent, then cut into tiles
            fresh = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x + fresh * settings.noise * math.sqrt(sigma_hat**2 - sigma**2)
        denoised = torch.zeros_like(x)
        for window, weight in zip(windows, weights, strict=True):
            on_tile()
            part = denoise(window.of(x), torch.tensor([sigma_hat], device=x.device), window)
            if following > RESTORE_UNTIL and settings.restore > 0:
                part = part - (part - window.of(centre)) * (sigma / SIGMA_MAX) ** settings.restore
            window.of(denoised).add_(part * weight)
        derivative = (x - denoised) / sigma_hat
        x = x + derivative * (following - sigma_hat)
        on_step(i + 1, len(sigmas) - 1)
    return x


def _windows(height: int, width: int, tile: int | None, like: torch.Tensor
             ) -> tuple[list[Window], list[torch.Tensor]]:
    """The tiles and their cross-fade weights (which sum to 1 everywhere)."""
    if tile is None or (height <= tile and width <= tile):
        return [Window(0, 0, height, width)], [like.new_ones(())]
    rects = plan_tiles(width, height, tile, max(1, tile // 2))
    ramps = blend_weights(rects)
    total = np.zeros((height, width, 1))
    for rect, ramp in zip(rects, ramps, strict=True):
        total[rect.slices] += ramp
    windows, weights = [], []
    for rect, ramp in zip(rects, ramps, strict=True):
        share = ramp / total[rect.slices]
        windows.append(_window(rect))
        weights.append(torch.from_numpy(share[..., 0]).to(like))
    return windows, weights


def _window(rect: Rect) -> Window:
    return Window(rect.y, rect.x, rect.height, rect.width)
