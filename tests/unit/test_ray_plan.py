"""The parts of `serve --ray` that need no Ray: how many replicas of what, the token file,
and what crosses the cluster (our codec frames and numpy pixels, no pickled messages)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from sfumato.bridge.protocol import Progress
from sfumato.bridge.raster import Layout, Raster
from sfumato.core.cluster.runtime import ensure_token, replica_plan
from sfumato.core.cluster.wire import pack_message, pack_rasters, unpack_message, unpack_rasters
from sfumato.core.config import Settings

pytestmark = pytest.mark.unit


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(home=tmp_path, endpoint="tcp://127.0.0.1:0", **values)  # type: ignore[arg-type]


def test_one_replica_per_gpu_unless_the_settings_bound_it(tmp_path: Path) -> None:
    assert replica_plan(_settings(tmp_path), 8.0) == ({"num_gpus": 1}, 8, 8)
    assert replica_plan(_settings(tmp_path, ray_max_replicas=12), 8.0) == ({"num_gpus": 1}, 8, 12)
    assert replica_plan(_settings(tmp_path, ray_min_replicas=2), 0.0) == ({"num_cpus": 1.0}, 2, 2)
    # no GPU and nothing set: one CPU replica, never zero
    assert replica_plan(_settings(tmp_path, ray_cpus_per_replica=4.0), 0.0) == (
        {"num_cpus": 4.0}, 1, 1)


def test_the_token_is_made_once_and_readable_by_this_user_only(tmp_path: Path) -> None:
    path = ensure_token(tmp_path)
    token = path.read_text()
    assert len(token) == 64 and stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)  # e.g. copied in from the head node with a loose mode
    assert ensure_token(tmp_path).read_text() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_messages_cross_as_codec_frames_and_pixels_as_arrays(tmp_path: Path) -> None:
    frames = pack_message(Progress(id="j1", job_id="j1", step=3, total=9, stage="tile"))
    assert all(isinstance(frame, bytes) for frame in frames)
    assert unpack_message(frames) == Progress(id="j1", job_id="j1", step=3, total=9,
                                              stage="tile")
    raster = Raster(3, 2, Layout.RGBA16, bytes(range(48)))
    (packed,) = pack_rasters([raster])
    assert packed[0] == raster.describe() and packed[1].nbytes == 48
    for copy in (False, True):
        (back,) = unpack_rasters([packed], copy=copy)
        assert back.layout is Layout.RGBA16 and bytes(back.data) == bytes(raster.data)
