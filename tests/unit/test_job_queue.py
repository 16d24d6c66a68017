"""The job queue: fair across clients, bounded with a typed refusal, cancellable."""

from __future__ import annotations

import pytest
from sfumato.bridge.protocol import ErrorCode
from sfumato.core.daemon.job_queue import Job, JobQueue
from sfumato.core.errors import SfumatoError

pytestmark = pytest.mark.unit


def _job(client: bytes, n: int) -> Job:
    return Job(job_id=f"{client.decode()}{n}", request_id=str(n), client=client, task="upscale",
               model=None, params={}, rasters=[])


def test_a_batch_client_cannot_starve_another() -> None:
    queue = JobQueue(max_total=20, max_per_client=10)
    for n in range(5):
        queue.push(_job(b"batch", n))
    queue.push(_job(b"artist", 0))
    order = [queue.pop_next().job_id for _ in range(6)]
    assert order.index("artist0") <= 1
    assert [j for j in order if j.startswith("batch")] == [f"batch{n}" for n in range(5)]
    assert queue.pop_next() is None


def test_positions_follow_round_robin_order() -> None:
    queue = JobQueue()
    queue.push(_job(b"a", 0))
    queue.push(_job(b"a", 1))
    assert queue.push(_job(b"b", 0)) == 1
    assert [j.job_id for j in queue.order()] == ["a0", "b0", "a1"]


def test_bounds_refuse_with_queue_full() -> None:
    queue = JobQueue(max_total=3, max_per_client=2)
    queue.push(_job(b"a", 0))
    queue.push(_job(b"a", 1))
    with pytest.raises(SfumatoError) as per_client:
        queue.push(_job(b"a", 2))
    assert per_client.value.code is ErrorCode.QUEUE_FULL
    queue.push(_job(b"b", 0))
    with pytest.raises(SfumatoError) as total:
        queue.push(_job(b"c", 0))
    assert total.value.code is ErrorCode.QUEUE_FULL
    assert "cancel" in total.value.message


def test_remove_and_drop_client() -> None:
    queue = JobQueue()
    for n in range(3):
        queue.push(_job(b"a", n))
    queue.push(_job(b"b", 0))
    assert queue.remove("a1").job_id == "a1"
    assert queue.remove("a1") is None
    assert [j.job_id for j in queue.drop_client(b"a")] == ["a0", "a2"]
    assert [j.job_id for j in queue.order()] == ["b0"]


def test_a_job_whose_worker_died_runs_next_before_other_clients() -> None:
    from sfumato.core.daemon.job_queue import Job, JobQueue

    def job(job_id: str, client: bytes) -> Job:
        return Job(job_id=job_id, request_id=job_id, client=client, task="upscale", model=None,
                   params={}, rasters=[])

    queue = JobQueue()
    queue.push(job("b1", b"b"))
    queue.push(job("c1", b"c"))
    queue.retry_first(job("a1", b"a"))  # it had already had its turn
    assert [j.job_id for j in queue.order()] == ["a1", "b1", "c1"]
    assert [j.job_id for j in queue.drain()] == ["a1", "b1", "c1"]
    assert len(queue) == 0 and queue.pop_next() is None


def _keyed(client: bytes, identity: bytes, n: int) -> Job:
    job = _job(client, n)
    job.identity = identity
    return job


def test_many_client_ids_of_one_key_are_one_identity() -> None:
    """Five made-up client ids on one key: one turn in the round and at most
    max_per_identity places, so another key's job is queued and runs second."""
    queue = JobQueue(max_total=32, max_per_client=8, max_per_identity=16)
    taken = 0
    for fake in range(5):
        for n in range(8):
            try:
                queue.push(_keyed(b"fake%d" % fake, b"KEY-A", n))
                taken += 1
            except SfumatoError as exc:
                assert exc.code is ErrorCode.QUEUE_FULL
    assert taken == 16
    queue.push(_keyed(b"artist", b"KEY-B", 0))
    assert [j.job_id for j in queue.order()][:3] == ["fake00", "artist0", "fake10"]
    assert queue.pop_next().job_id == "fake00"
    assert queue.pop_next().job_id == "artist0"
