"""Jobs waiting for the worker: bounded, fair across identities and then across clients,
cancellable. Pure Python.

An identity is who a client proved to be (its CURVE key; without authentication, its client
id): one program that names five client ids is still one identity, so it gets one turn in
the round and at most `max_per_identity` places, and cannot fill the queue for others."""

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
    identity: bytes = b""  # the key the client proved (ZeroMQ's User-Id); b"": its client id

    @property
    def owner(self) -> bytes:
        """Whose turn this job takes in the round: its identity, else its client id."""
        return self.identity or self.client

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
    """Round-robin across identities, and within one identity across its clients, so one
    batch script cannot starve an artist's click, however many client ids it uses."""

    max_total: int = 32
    max_per_client: int = 8
    clock: Callable[[], float] = time.monotonic
    max_per_identity: int = 16
    # identity -> client -> its jobs, each level in turn order
    _lanes: OrderedDict[bytes, OrderedDict[bytes, deque[Job]]] = field(
        default_factory=OrderedDict)

    def __len__(self) -> int:
        return sum(len(jobs) for clients in self._lanes.values() for jobs in clients.values())

    def push(self, job: Job) -> int:
        """Queue a job; returns its position (0 = next). Raises QUEUE_FULL when at a bound."""
        if len(self) >= self.max_total:
            raise SfumatoError(
                ErrorCode.QUEUE_FULL,
                f"the daemon already has {self.max_total} jobs waiting; wait for some to finish "
                "or cancel them (`sfumato status` lists them)",
            )
        clients = self._lanes.get(job.owner, OrderedDict())
        if sum(len(jobs) for jobs in clients.values()) >= self.max_per_identity:
            raise SfumatoError(
                ErrorCode.QUEUE_FULL,
                f"your programs already have {self.max_per_identity} jobs waiting; wait for "
                "some to finish or cancel them (`sfumato status` lists them)",
            )
        if len(clients.get(job.client, ())) >= self.max_per_client:
            raise SfumatoError(
                ErrorCode.QUEUE_FULL,
                f"you already have {self.max_per_client} jobs waiting; wait for one to finish",
            )
        job.submitted_at = self.clock()
        self._lanes.setdefault(job.owner, OrderedDict()).setdefault(job.client, deque()) \
            .append(job)
        return self.position(job.job_id)

    def retry_first(self, job: Job) -> None:
        """Put back a job whose worker died under it: it runs next, before any other client's,
        since it had already had its turn. Not bounded: it held a place already."""
        clients = self._lanes.setdefault(job.owner, OrderedDict())
        clients.setdefault(job.client, deque()).appendleft(job)
        clients.move_to_end(job.client, last=False)
        self._lanes.move_to_end(job.owner, last=False)

    def pop_next(self) -> Job | None:
        return _pop(self._lanes)

    def remove(self, job_id: str) -> Job | None:
        for owner, clients in self._lanes.items():
            for client, jobs in clients.items():
                for job in jobs:
                    if job.job_id == job_id:
                        jobs.remove(job)
                        self._prune(owner, client)
                        return job
        return None

    def drain(self) -> list[Job]:
        """Every waiting job, in the order they would have run; the queue is left empty."""
        jobs = self.order()
        self._lanes.clear()
        return jobs

    def drop_client(self, client: bytes) -> list[Job]:
        dropped: list[Job] = []
        for owner in list(self._lanes):
            dropped.extend(self._lanes[owner].pop(client, ()))
            self._prune(owner, client)
        return dropped

    def find(self, job_id: str) -> Job | None:
        return next((j for j in self._jobs() if j.job_id == job_id), None)

    def order(self) -> list[Job]:
        """The order jobs would run in, given round-robin service."""
        lanes = OrderedDict((owner, OrderedDict((client, deque(jobs))
                                                for client, jobs in clients.items()))
                            for owner, clients in self._lanes.items())
        out: list[Job] = []
        while (job := _pop(lanes)) is not None:
            out.append(job)
        return out

    def position(self, job_id: str) -> int:
        return next((i for i, job in enumerate(self.order()) if job.job_id == job_id), -1)

    def clients(self) -> list[bytes]:
        return [client for clients in self._lanes.values() for client in clients]

    def _jobs(self) -> list[Job]:
        return [job for clients in self._lanes.values() for jobs in clients.values()
                for job in jobs]

    def _prune(self, owner: bytes, client: bytes) -> None:
        clients = self._lanes.get(owner)
        if clients is None:
            return
        if client in clients and not clients[client]:
            del clients[client]
        if not clients:
            del self._lanes[owner]


def _pop(lanes: OrderedDict[bytes, OrderedDict[bytes, deque[Job]]]) -> Job | None:
    """The next job: the first identity's first client's; each then goes to the back of its
    line."""
    while lanes:
        owner, clients = next(iter(lanes.items()))
        if not clients:
            del lanes[owner]
            continue
        client, jobs = next(iter(clients.items()))
        if not jobs:
            del clients[client]
            continue
        job = jobs.popleft()
        clients.move_to_end(client)
        if not jobs:
            del clients[client]
        lanes.move_to_end(owner)
        if not clients:
            del lanes[owner]
        return job
    return None
