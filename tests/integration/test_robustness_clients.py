"""Several programs share one daemon: each gets its turn, none can flood the queue, none can
cancel or take another's work, and a plug-in that lost its connection (or restarted) gets the
results it missed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sfumato.bridge.client import JobFailed, RequestRejected
from sfumato.bridge.protocol import Cancelled, ErrorCode, Progress, Result
from sfumato.bridge.raster import Layout, Raster

from tests.support.daemon_process import DaemonProcess, start_daemon
from tests.support.tiny_upscaler import build_tiny_upscaler

pytestmark = pytest.mark.integration

SLOW = {"tile": 32}
PER_CLIENT = 3


def _image(width: int, height: int) -> Raster:
    row = bytes((x * 7 + 30) % 256 for x in range(width * 4))
    return Raster(width, height, Layout.RGBA8, row * height)


@pytest.fixture(scope="module")
def shared_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    home = tmp_path_factory.mktemp("shared")
    daemon = start_daemon(home / "home", f"max_queue_per_client = {PER_CLIENT}\n")
    daemon.add_model("tiny", build_tiny_upscaler(home / "tiny-x2.safetensors"))
    yield daemon
    daemon.stop()


def test_clients_take_turns_and_one_cannot_flood_the_queue(shared_daemon: DaemonProcess) -> None:
    with shared_daemon.client() as blocker, shared_daemon.client() as batch, \
            shared_daemon.client() as artist:
        running = blocker.submit("upscale", SLOW, [_image(1024, 1024)], "tiny")
        batch_jobs = [batch.submit("upscale", {}, [_image(8, 8)], "tiny")
                      for _ in range(PER_CLIENT)]
        with pytest.raises(RequestRejected) as full:
            batch.submit("upscale", {}, [_image(8, 8)], "tiny")
        assert full.value.code == ErrorCode.QUEUE_FULL.value
        assert "wait" in full.value.message
        click = artist.submit("upscale", {}, [_image(8, 8)], "tiny")  # not blocked by batch

        report = artist.status()
        assert report.running is not None and report.running["job_id"] == running.job_id
        order = [entry["job_id"] for entry in report.queued]
        # the artist's click, submitted last, runs right after the batch's first job
        assert order == [batch_jobs[0].job_id, click.job_id,
                         *(job.job_id for job in batch_jobs[1:])]
        assert [entry["mine"] for entry in report.queued] == [False, True, False, False]

        blocker.cancel(running.job_id)
        finished = [[m for m, _ in client.events(job)][-1]
                    for client, job in [(batch, batch_jobs[0]), (artist, click)]]
        assert all(isinstance(m, Result) for m in finished)
        for job in batch_jobs[1:]:
            assert isinstance([m for m, _ in batch.events(job)][-1], Result)


def test_another_clients_job_cannot_be_cancelled_or_taken(shared_daemon: DaemonProcess) -> None:
    with shared_daemon.client() as owner, shared_daemon.client() as intruder:
        job = owner.submit("upscale", SLOW, [_image(512, 512)], "tiny")
        events = owner.events(job)
        next(m for m, _ in events if isinstance(m, Progress))
        with pytest.raises(RequestRejected) as refused:
            intruder.cancel(job.job_id)
        assert refused.value.code == ErrorCode.FORBIDDEN.value
        with pytest.raises(JobFailed) as taken:
            list(intruder.events(intruder.attach(job.job_id)))
        assert taken.value.code == ErrorCode.FORBIDDEN.value
        assert owner.status().running["step"] >= 1  # still running, still the owner's
        assert owner.cancel(job.job_id).state == "running"
        assert isinstance([m for m, _ in events][-1], Cancelled)
        # the kept (cancelled) result is the owner's too
        with pytest.raises(JobFailed) as kept:
            list(intruder.events(intruder.attach(job.job_id)))
        assert kept.value.code == ErrorCode.FORBIDDEN.value


def test_a_restarted_plug_in_gets_the_results_it_missed(shared_daemon: DaemonProcess) -> None:
    plugin = shared_daemon.client(client_id="krita-artist-7")
    job = plugin.submit("upscale", {"tile": 48}, [_image(256, 256)], "tiny")
    next(m for m, _ in plugin.events(job) if isinstance(m, Progress))
    plugin.close()  # the editor crashed mid-job

    with shared_daemon.client() as someone_else:
        assert someone_else.run("upscale", {}, [_image(8, 8)], "tiny").rasters[0].width == 16
        assert someone_else.missed() == []  # nothing of theirs was missed

    with shared_daemon.client(client_id="krita-artist-7") as restarted:
        [missed] = restarted.missed()
        assert missed == job.job_id
        terminal, rasters = list(restarted.events(restarted.attach(missed)))[-1]
        assert isinstance(terminal, Result) and terminal.job_id == job.job_id
        assert (rasters[0].width, rasters[0].height) == (512, 512)
        assert restarted.missed() == []  # delivered now
