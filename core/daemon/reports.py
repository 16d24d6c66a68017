"""What the daemon says about itself: the welcome a client gets on hello, and the status
report (device, worker health, the running and queued jobs, each marked `mine` for the
client that asks)."""

from __future__ import annotations

import os
from collections.abc import Iterable

from sfumato.bridge.protocol import StatusReport, Welcome
from sfumato.core import __version__
from sfumato.core.config import Settings
from sfumato.core.daemon.client_names import same_owner
from sfumato.core.daemon.job_queue import Job
from sfumato.core.daemon.limits import max_frame_bytes
from sfumato.core.models.registry import Registry
from sfumato.core.tasks import CATALOGUE
from sfumato.core.worker.dispatch import Dispatcher


def welcome(request_id: str, settings: Settings, registry: Registry, worker: Dispatcher,
            missed: list[str]) -> Welcome:
    """The answer to hello: version, tasks, models, device, limits, results it missed."""
    return Welcome(
        id=request_id,
        daemon_version=__version__,
        tasks=sorted(CATALOGUE),
        models=[e.describe() for e in registry.entries()],
        device=worker.device,
        limits={"max_pixels": settings.max_pixels, "max_queue": settings.max_queue,
                "max_queue_per_client": settings.max_queue_per_client,
                "max_frame_bytes": max_frame_bytes(settings)},
        missed=missed,
    )


def status_report(request_id: str, identity: bytes, registry: Registry, worker: Dispatcher,
                  running: list[Job], queued: Iterable[Job]) -> StatusReport:
    """The answer to status, for the client `identity` (its own jobs are marked)."""
    def describe(job: Job) -> dict:
        return {**job.describe(), "mine": same_owner(job.client, identity)}

    return StatusReport(
        id=request_id,
        daemon_version=__version__,
        device=worker.device,
        running=describe(running[0]) if running else None,
        queued=[describe(job) for job in queued],
        models=[e.describe() for e in registry.entries()],
        worker={**worker.health, "ready": worker.ready, "restarts": worker.restarts,
                "daemon_pid": os.getpid(), "running": [describe(job) for job in running]},
    )
