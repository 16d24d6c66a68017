"""The `callback_on_step_end` adapter: progress and previews out, cancellation in.

Cancelling raises JobCancelled from inside the callback, at the step boundary. diffusers' own
interrupt flag would still decode and return an image, which a cancelled job must not do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sfumato.core.task_api import CancelToken

PREVIEW_MAX_PX = 256

# Fixed latent -> RGB projections, one row per latent channel, applied to the latents as the
# denoising loop holds them (already scaled). They are coarse, hand-set approximations: enough
# to see composition and rough colour in a preview, never used for a result.
_SD_PROJECTION = np.array(
    [
        [0.30, 0.27, 0.24],  # brightness
        [0.20, -0.05, -0.15],  # warm against cool
        [0.05, 0.20, -0.05],  # green against magenta
        [-0.15, -0.10, 0.15],  # blue against yellow
    ],
    dtype=np.float32,
)
# FLUX's 16 channels: the same four roles spread over four groups, with falling weight.
_FLUX_PROJECTION = np.concatenate([_SD_PROJECTION * w for w in (0.5, 0.3, 0.2, 0.1)], axis=0)

Progress = Callable[[int, int, str], None]
PreviewSink = Callable[[np.ndarray, int], None]


class StepProgress:
    """Pass an instance as `callback_on_step_end`.

    Every step it reports `progress(step, total, stage)` (step counts from 1), every
    `preview_every` steps it sends a small RGBA uint8 preview of the latents to `preview`, and
    then it raises JobCancelled if the job's cancel flag is set. `image_size` = (width, height)
    of the generated image is needed to unpack FLUX's packed latents.
    """

    def __init__(
        self,
        progress: Progress,
        cancel: CancelToken,
        total: int,
        stage: str = "denoise",
        preview: PreviewSink | None = None,
        preview_every: int = 5,
        image_size: tuple[int, int] | None = None,
    ) -> None:
        self.progress = progress
        self.cancel = cancel
        self.total = total
        self.stage = stage
        self.preview = preview
        self.preview_every = max(1, preview_every)
        self.image_size = image_size
        self.steps_done = 0

    def __call__(
        self, pipe: Any, step: int, timestep: Any, callback_kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        total = _run_length(pipe) or self.total
        self.steps_done = step + 1
        self.progress(self.steps_done, total, self.stage)
        self.cancel.raise_if_cancelled()
        latents = callback_kwargs.get("latents")
        wants_preview = self.steps_done % self.preview_every == 0 and self.steps_done < total
        if self.preview is not None and latents is not None and wants_preview:
            image = latent_preview(latents, self.image_size)
            if image is not None:
                self.preview(image, self.steps_done)
        return callback_kwargs


def _run_length(pipe: Any) -> int | None:
    # the number of steps the pipeline really runs (fewer than asked when strength < 1)
    try:
        return int(pipe.num_timesteps)
    except (AttributeError, TypeError, ValueError):
        return None


def latent_preview(
    latents: Any, image_size: tuple[int, int] | None = None, max_px: int = PREVIEW_MAX_PX
) -> np.ndarray | None:
    """A small RGBA uint8 picture of the first latent in the batch, or None when the latent
    layout is not one this knows (4-channel SD/SDXL, packed or plain 16-channel FLUX)."""
    first = latents[0].detach().float().cpu().numpy()
    if first.ndim == 2:  # FLUX packs 2x2 patches of 16 channels into tokens of 64
        grid = _packed_grid(first.shape[0], image_size)
        if grid is None or first.shape[1] % 4:
            return None
        rows, cols = grid
        channels = first.shape[1] // 4
        planes = first.reshape(rows, cols, channels, 4).mean(axis=-1)
    elif first.ndim == 3:
        planes = np.moveaxis(first, 0, -1)
    else:
        return None
    projection = {4: _SD_PROJECTION, 16: _FLUX_PROJECTION}.get(planes.shape[-1])
    if projection is None:
        return None
    rgb = np.clip(planes @ projection + 0.5, 0.0, 1.0)
    image = np.empty((*rgb.shape[:2], 4), dtype=np.uint8)
    image[..., :3] = np.rint(rgb * 255.0).astype(np.uint8)
    image[..., 3] = 255
    return _fit_within(image, max_px)


def _packed_grid(tokens: int, image_size: tuple[int, int] | None) -> tuple[int, int] | None:
    if image_size is not None:
        rows, cols = image_size[1] // 16, image_size[0] // 16
        if rows * cols == tokens:
            return rows, cols
    side = int(round(tokens**0.5))
    return (side, side) if side * side == tokens else None


def _fit_within(image: np.ndarray, max_px: int) -> np.ndarray:
    height, width = image.shape[:2]
    if max(height, width) <= max_px:
        return image
    from PIL import Image

    scale = max_px / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image, "RGBA").resize(size, Image.Resampling.BILINEAR))
