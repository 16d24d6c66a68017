"""The real client against the real daemon loop, in this process (tests/support/in_process.py):
what the two say to each other, with no daemon process and no TCP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sfumato.bridge.client import RequestRejected
from sfumato.bridge.protocol import Cancelled, ErrorCode
from sfumato.bridge.raster import Layout, Raster

from tests.support.in_process import InProcessDaemon, in_process_daemon

pytestmark = pytest.mark.unit

LAYER = Raster(8, 8, Layout.RGBA8, bytes(8 * 8 * 4))


@pytest.fixture
def twin(tmp_path: Path) -> Iterator[InProcessDaemon]:
    with in_process_daemon(tmp_path / "home") as daemon:
        yield daemon


def test_ping_echoes_pixels_and_status_answers(twin: InProcessDaemon) -> None:
    with twin.client(timeout_s=5) as client:
        (echoed,) = client.ping([LAYER])
        assert echoed.packed_bytes() == LAYER.packed_bytes()
        report = client.status()
        assert report.running is None and report.queued == []


@pytest.mark.parametrize(("task", "params", "code", "words"), [
    ("upscale", {"scale": "4"}, ErrorCode.BAD_PARAMS, "scale must be a number"),
    ("upscale", {"scael": 4}, ErrorCode.BAD_PARAMS, "upscale has no parameter 'scael'"),
    ("inpaint", {"steps": 0}, ErrorCode.BAD_PARAMS, "steps must be a whole number from 1"),
    ("sharpen", {}, ErrorCode.UNKNOWN_TASK, "unknown task 'sharpen'"),
])
def test_a_request_the_contract_refuses_is_rejected_at_once_and_serving_goes_on(
        twin: InProcessDaemon, task: str, params: dict[str, object], code: ErrorCode,
        words: str) -> None:
    with twin.client(timeout_s=5) as client:
        with pytest.raises(RequestRejected) as caught:
            client.submit(task, params, [LAYER, Raster(8, 8, Layout.GRAY8, bytes(64))])
        assert caught.value.code is code and words in caught.value.message
        assert client.status().queued == []  # nothing was queued
        client.ping()  # and the daemon still answers


def test_a_queued_job_is_its_owners_to_cancel(twin: InProcessDaemon) -> None:
    with twin.client(timeout_s=5) as owner, twin.client(timeout_s=5) as other:
        job = owner.submit("upscale", {"scale": 2.0}, [LAYER])
        assert job.position == 0  # first in line: no worker is ready to take it
        queued = owner.status().queued
        assert [entry["job_id"] for entry in queued] == [job.job_id]
        with pytest.raises(RequestRejected) as caught:
            other.cancel(job.job_id)
        assert caught.value.code is ErrorCode.FORBIDDEN
        owner.cancel(job.job_id)
        (event, _), = list(owner.events(job))
        assert isinstance(event, Cancelled)
        assert owner.status().queued == []
