"""`--control` and `--image-prompt` as the command line reads them into a request."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sfumato.bridge.protocol import ErrorCode
from sfumato.core.cli.diffusion_cmd import guide_params
from sfumato.core.errors import SfumatoError

pytestmark = pytest.mark.unit


def test_controls_and_image_prompts_become_params_and_rasters(tmp_path: Path) -> None:
    odd = tmp_path / "lines:v2.png"  # a colon in the file name is still the file's
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(odd)
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(tmp_path / "ref.png")
    rasters: list = ["layer", "mask"]
    params = guide_params(["canny:auto", f"lineart@my-lineart:{odd}:0.9", f"scribble:{odd}"],
                          [f"{tmp_path / 'ref.png'}:0.4"], "ip-plus", rasters)
    # the same wire form the plug-ins send (bridge.guides), the contract's defaults spelled out
    span = {"start": 0.0, "end": 1.0}
    assert params["controls"] == [
        {"kind": "canny", "image": "auto", "scale": 0.6, **span},
        {"kind": "lineart", "image": 2, "scale": 0.9, "model": "my-lineart", **span},
        {"kind": "scribble", "image": 3, "scale": 0.6, **span},
    ]
    assert params["image_prompts"] == [{"image": 4, "weight": 0.4, "model": "ip-plus"}]
    assert len(rasters) == 5 and (rasters[2].width, rasters[2].height) == (8, 6)
    assert guide_params([], [], None, rasters) == {}


@pytest.mark.parametrize("spec", ["canny", "canny:", "canny::0.5"])
def test_a_control_without_an_image_says_how_to_write_it(spec: str) -> None:
    with pytest.raises(SfumatoError) as caught:
        guide_params([spec], [], None, [])
    assert caught.value.code is ErrorCode.BAD_PARAMS and "KIND:IMAGE" in caught.value.message
