"""A worker that dies before it is ready, again and again, fails the waiting jobs with a typed
message instead of leaving them (and the artist's editor) waiting forever."""

from __future__ import annotations

from pathlib import Path

import pytest
from sfumato.bridge.protocol import ErrorCode, Failed, Message
from sfumato.core.config import Settings
from sfumato.core.daemon.job_queue import Job
from sfumato.core.daemon.server import MAX_START_FAILURES, Daemon

pytestmark = pytest.mark.unit


def test_waiting_jobs_fail_once_the_worker_cannot_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = Daemon(Settings(home=tmp_path, endpoint="tcp://127.0.0.1:0"))
    # the real supervisor's bookkeeping, with no processes: every start dies before ready
    monkeypatch.setattr(daemon._worker, "start", lambda: None)
    monkeypatch.setattr(daemon._worker, "stop", lambda: None)
    sent: list[tuple[bytes, Message]] = []
    daemon._reply = lambda identity, message, rasters=(): sent.append((identity, message))  # type: ignore[method-assign]
    daemon._queue.push(Job(job_id="j1", request_id="r1", client=b"artist", task="upscale",
                           model=None, params={}, rasters=[]))
    for _ in range(MAX_START_FAILURES - 1):
        daemon._worker_died("exit code 1")
    assert sent == [] and len(daemon._queue) == 1  # a few failed starts are retried quietly
    daemon._worker_died("exit code 1")
    assert len(daemon._queue) == 0 and daemon._worker.restarts == MAX_START_FAILURES
    [(identity, failed)] = sent
    assert identity == b"artist" and isinstance(failed, Failed)
    assert failed.id == "r1" and failed.code == ErrorCode.WORKER_CRASHED.value
    assert "sfumato doctor" in failed.message and "worker.log" in failed.message


def test_restarts_back_off_while_workers_die_before_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sfumato.core.worker.supervisor import MAX_RESTART_DELAY_S, WorkerSupervisor

    supervisor = WorkerSupervisor(Settings(home=tmp_path, endpoint="tcp://127.0.0.1:0"))
    starts: list[float] = []
    monkeypatch.setattr(supervisor, "start", lambda: starts.append(1.0))
    clock = [1000.0]
    monkeypatch.setattr("sfumato.core.worker.supervisor.time.monotonic", lambda: clock[0])
    supervisor.ready = True
    supervisor.restart()  # a crash mid-job: a fresh worker at once
    assert len(starts) == 1 and supervisor.start_failures == 0
    supervisor.restart()  # that one died before ready: wait 2 s first
    assert len(starts) == 1 and supervisor.fileno() is None
    clock[0] += 1.9
    supervisor.start_if_due()
    assert len(starts) == 1
    clock[0] += 0.2
    supervisor.start_if_due()
    assert len(starts) == 2
    for _ in range(10):
        supervisor.restart()
    assert supervisor._start_at == pytest.approx(clock[0] + MAX_RESTART_DELAY_S)
