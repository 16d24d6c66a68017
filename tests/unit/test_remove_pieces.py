"""Pieces of object removal that need no model: the Telea fill, the working size a fill
model runs at, the remove contract's reach, and the Krita docker's widget names."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from sfumato.bridge.geometry import task_reach
from sfumato.bridge.schema import REMOVE
from sfumato.core.models.fill_run import fill_size
from sfumato.core.pixels.telea import telea_fill

pytestmark = pytest.mark.unit

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "krita"))

from sfumato_krita import task_fields  # noqa: E402


def test_telea_fills_the_hole_from_its_surround_and_nothing_else() -> None:
    rgb = np.zeros((40, 60, 3), np.float32)
    rgb[...] = (0.1, 0.4, 0.8)
    rgb[15:25, 20:40] = (1.0, 0.0, 0.0)  # the object
    hole = np.zeros((40, 60), bool)
    hole[13:27, 18:42] = True
    filled = telea_fill(rgb, hole)
    assert np.array_equal(filled[~hole], rgb[~hole])
    assert np.allclose(filled[hole], (0.1, 0.4, 0.8), atol=4 / 255)  # the red is gone


def test_fill_models_work_at_their_own_sizes() -> None:
    assert fill_size("lama", 300, 200, None) == (304, 200)  # the crop's own, multiple of 8
    width, height = fill_size("lama", 2000, 1000, None)  # larger: about 512² pixels
    assert abs(width * height - 512 * 512) < 512 * 16 and width % 8 == height % 8 == 0
    assert fill_size("lama", 2000, 1000, 1024)[0] > width  # --resolution raises the area
    assert fill_size("mat", 300, 200, None) == (512, 512)  # MAT: its square
    assert fill_size("mat", 300, 200, 1100) == (1024, 1024)  # multiples of 512 only


def test_the_bridge_crops_what_the_task_reaches() -> None:
    assert REMOVE.reach({}) == task_reach(8, 8, 128)  # the contract's defaults
    assert REMOVE.reach({"grow": 2, "feather": 4, "context": 8}) == task_reach(2, 4, 8)


def test_krita_widget_names_are_unique_across_the_docker() -> None:
    every = (task_fields.GENERATE_FIELDS + task_fields.EXPAND_FIELDS
             + task_fields.UPSCALE_FIELDS + task_fields.REMOVE_FIELDS)
    names = [f.object_name for f in every]
    assert len(names) == len(set(names))  # the remove box's steps are not the generate box's
    assert {f.name for f in task_fields.REMOVE_FIELDS} == set(REMOVE.names) - {"prompt"}
