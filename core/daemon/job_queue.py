"""Jobs waiting for the worker: bounded, fair across clients, cancellable. Pure Python."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sfumato.bridge.protocol import ErrorCode, JobState
from sfumato.bridge.raster import Raster
from sfumato.core.errors import SfumatoError


@dataclass
class Job:
    job_id: str
    request_id: str
    client: bytes  # the ROUTER identity its events go to
    task: str
    model: str | None
    params: dict[str, Any]
    rasters: list[Raster]
    submitted_at: float = 0.0
    state: JobState = JobState.QUEUED
    attempts: int = 0
    started_at: float | None = None
    progress: tuple[int, int] = (0, 0)
    stage: str = ""  # what the last progress event said it was doing
    label: str = ""  # who submitted it, readable (program name + pid)

    def describe(self, now: float | None = None) -> dict[str, Any]:
        step, total = self.progress
        since = self.started_at if self.started_at is not None else self.submitted_at
        return {
            "job_id": self.job_id,
            "task": self.task,
            "model": self.model,
            "state": self.state.value,
            "step": step,
            "total": total,
            "stage": self.stage,
            "client": self.label,
            "seconds": round((time.monotonic() if now is None else now) - since, 1),
            "pixels": sum(r.width * r.height for r in self.rasters),
        }


@dataclass
class JobQueue:
    """Round-robin across clients, so one batch script cannot starve an artist's click."""

    max_total: int = 32
    max_per_client: int = 8
    clock: Callable[[], float] = time.monotonic
    _by_client: OrderedDict[bytes, deque[Job]] = field(default_factory=OrderedDict)

    def __len__(self) -> int:
        return sum(len(q) for q in self._by_client.values())

    def push(self, job: Job) -> int:
        """Queue a job; returns its position (0 = next). Raises QUEUE_FULL when at a bound."""
        if len(self) >= self.max_total:
            raise SfumatoError(
                ErrorCode.QUEUE_FULL,
                f"the daemon already has {self.max_total} jobs waiting; wait for some to finish "
                "or cancel them (`sfumato status` lists them)",
            )
        mine = self._by_client.setdefault(job.client, deque())
        if len(mine) >= self.max_per_client:
            raise SfumatoError(
                ErrorCode.QUEUE_FULL,
                f"you already have {self.max_per_client} jobs waiting; wait for one to finish",
            )
        job.submitted_at = self.clock()
        mine.append(job)
        return self.position(job.job_id)

    def retry_first(self, job: Job) -> None:
        """Put back a job whose worker died under it: it runs next, before any other client's,
        since it had already had its turn. Not bounded: it held a place already."""
        mine = self._by_client.setdefault(job.client, deque())
        mine.appendleft(job)
        self._by_client.move_to_end(job.client, last=False)

    def pop_next(self) -> Job | None:
        while self._by_client:
            client, jobs = next(iter(self._by_client.items()))
            if not jobs:
                del self._by_client[client]
                continue
            job = jobs.popleft()
            # this client goes to the back of the line
            self._by_client.move_to_end(client)
            if not jobs:
                del self._by_client[client]
            return job
        return None

    def remove(self, job_id: str) -> Job | None:
        for client, jobs in self._by_client.items():
            for job in jobs:
                if job.job_id == job_id:
                    jobs.remove(job)
                    if not jobs:
                        del self._by_client[client]
                    return job
        return None

    def drain(self) -> list[Job]:
        """Every waiting job, in the order they would have run; the queue is left empty."""
        jobs = self.order()
        self._by_client.clear()
        return jobs

    def drop_client(self, client: bytes) -> list[Job]:
        return list(self._by_client.pop(client, ()))

    def find(self, job_id: str) -> Job | None:
        return next((j for jobs in self._by_client.values() for j in jobs if j.job_id == job_id),
                    None)

    def order(self) -> list[Job]:
        """The order jobs would run in, given round-robin service."""
        lanes = [list(jobs) for jobs in self._by_client.values()]
        out: list[Job] = []
        depth = max((len(lane) for lane in lanes), default=0)
        for i in range(depth):
            out.extend(lane[i] for lane in lanes if i < len(lane))
        return out

    def position(self, job_id: str) -> int:
        return next((i for i, job in enumerate(self.order()) if job.job_id == job_id), -1)

    def clients(self) -> list[bytes]:
        return list(self._by_client)
