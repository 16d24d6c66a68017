"""Where keypoints land in the picture: the crop ViTPose reads (the whole picture as one box)
and the way back from its heatmaps. A random-weight model puts keypoints anywhere, so here a
stand-in whose heatmaps are the brightness of what it was shown stands for the network; the
image processor is transformers' own."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.integration


class _Brightness:
    """Heatmaps = the crop's brightness at half resolution, one per COCO keypoint."""

    def __init__(self) -> None:
        import torch

        self.anchor = torch.nn.Parameter(torch.zeros(1))  # where the model lives

    def parameters(self) -> Any:
        return iter([self.anchor])

    def __call__(self, pixel_values: Any, dataset_index: Any) -> SimpleNamespace:
        import torch

        bright = pixel_values.mean(dim=1, keepdim=True)
        half = torch.nn.functional.avg_pool2d(bright, 2)
        return SimpleNamespace(heatmaps=half.repeat(1, 17, 1, 1))


@pytest.mark.parametrize(("size", "dot"), [((96, 128), (100, 30)), ((160, 90), (20, 130))])
def test_a_bright_dot_is_found_where_it_is_in_the_picture(
        size: tuple[int, int], dot: tuple[int, int]) -> None:
    import cv2
    from sfumato.core.models.torchvision_guard import guard_torchvision
    from sfumato.core.preprocessors.pose import estimate_keypoints

    guard_torchvision()
    from transformers import VitPoseImageProcessor

    picture = np.zeros(size + (3,), np.uint8)
    cv2.circle(picture, dot, 3, (255, 255, 255), thickness=-1)
    processor = VitPoseImageProcessor(size={"height": 128, "width": 96})
    found = estimate_keypoints(picture, _Brightness(), processor)
    assert found.xy.shape == (17, 2) and found.scores.shape == (17,)
    # within a heatmap cell (two model pixels, here under 4 picture pixels) of the dot
    assert np.abs(found.xy - np.array(dot)).max() <= 4, found.xy[0]
    assert (found.scores > 0).all()
