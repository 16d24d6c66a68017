"""core.progress: the callback_on_step_end adapter, without a pipeline."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
import torch
from sfumato.core.diffusion.step_callback import StepProgress, latent_preview
from sfumato.core.errors import JobCancelled
from sfumato.core.task_api import CancelToken

pytestmark = pytest.mark.unit


class FakePipe:
    num_timesteps = 6


def _adapter(flag: threading.Event | None = None, **extra: Any) -> tuple[StepProgress, list]:
    events: list[tuple] = []
    adapter = StepProgress(
        lambda step, total, stage: events.append(("progress", step, total, stage)),
        CancelToken(flag),
        total=99,
        preview=lambda image, step: events.append(("preview", step, image.shape, image.dtype)),
        **extra,
    )
    return adapter, events


def test_reports_every_step_previews_every_n_and_returns_the_kwargs() -> None:
    adapter, events = _adapter(preview_every=2)
    latents = torch.randn(1, 4, 32, 24)
    for step in range(6):
        kwargs = {"latents": latents}
        assert adapter(FakePipe(), step, 999 - step, kwargs) is kwargs
    progress = [e for e in events if e[0] == "progress"]
    assert [e[1:] for e in progress] == [(s, 6, "denoise") for s in range(1, 7)]
    previews = [e for e in events if e[0] == "preview"]
    # steps 2 and 4; none at the last step, where the real result follows at once
    assert [e[1] for e in previews] == [2, 4]
    assert previews[0][2] == (32, 24, 4) and previews[0][3] == np.uint8


def test_cancel_raises_at_the_step_boundary_after_reporting() -> None:
    flag = threading.Event()
    adapter, events = _adapter(flag)
    adapter(FakePipe(), 0, 1, {})
    flag.set()
    with pytest.raises(JobCancelled):
        adapter(FakePipe(), 1, 1, {})
    assert events[-1][:2] == ("progress", 2)


def test_previews_unpack_flux_tokens_and_stay_small() -> None:
    tokens = torch.randn(1, (512 // 16) * (768 // 16), 64)
    image = latent_preview(tokens, (768, 512))
    assert image is not None and image.shape == (32, 48, 4) and np.all(image[..., 3] == 255)
    big = latent_preview(torch.randn(1, 4, 400, 300))
    assert big is not None and max(big.shape[:2]) <= 256
    assert latent_preview(torch.randn(1, 7, 8, 8)) is None  # an unknown latent space


def test_the_pipelines_own_step_count_wins_over_the_estimate() -> None:
    adapter, events = _adapter()

    class NoCount:
        pass

    adapter(NoCount(), 0, 1, {})
    adapter(FakePipe(), 1, 1, {})
    assert [e[2] for e in events if e[0] == "progress"] == [99, 6]
