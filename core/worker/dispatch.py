"""The seam between the daemon's front door and whatever runs its jobs.

The server loop only needs this much from a backend: how many jobs it may hand over now, a
way to hand one over and to cancel it, a file descriptor to poll, and the jobs' events read
back as protocol messages. The supervised local worker process (supervisor.py) and the Ray
Serve deployment (core/cluster/dispatcher.py) both satisfy it, so server.py never branches on
which one it drives.
"""

from __future__ import annotations

from typing import Any, Protocol

from sfumato.bridge.protocol import Message
from sfumato.bridge.raster import Raster


class Dispatcher(Protocol):
    device: str  # what `status` shows: "cpu", "cuda", "ray: 2 replicas" ...
    ready: bool
    restarts: int
    start_failures: int  # backends in a row that died before they were ready

    @property
    def health(self) -> dict[str, Any]: ...

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def start_if_due(self) -> None: ...
    def restart(self) -> None: ...

    def capacity(self) -> int:
        """How many jobs may run at once right now (0 while not ready)."""
        ...

    def send_job(self, job_id: str, task: str, model: str | None, params: dict,
                 rasters: list[Raster]) -> None: ...

    def cancel(self, job_id: str) -> None:
        """Ask a running job to stop at its next step or tile."""
        ...

    def cancel_requested(self, job_id: str) -> bool: ...

    def fileno(self) -> int | None:
        """What the server's poller waits on; None while there is nothing to wait on."""
        ...

    def has_data(self) -> bool: ...

    def read(self) -> tuple[Message, list[Raster]]:
        """One event of a job (progress, preview, terminal); WorkerGone when the backend
        itself died (every job it was running is then lost)."""
        ...

    def pass_on_releases(self) -> None: ...

    def silent_for(self) -> float:
        """Seconds the backend has sent nothing while running; 0 where it watches itself."""
        ...

    def stalled_for(self) -> float: ...

    def kill(self) -> None: ...
