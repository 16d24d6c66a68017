"""The front door's side of Ray Serve: a `Dispatcher` (core/worker/dispatch.py) that hands
jobs to the deployment instead of the local worker process.

Each running job has a thread that follows its streamed response and queues the events for
the server loop, waking its poller through a pipe. Pixels go into Ray's object store once
per job (a retry reuses them). A replica that dies mid-job costs a retry on another replica;
a second death fails the job `worker_lost`; the front door serves on throughout.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
from typing import Any

from sfumato.bridge.protocol import Cancelled, ErrorCode, Failed, Message, Submit
from sfumato.bridge.raster import Raster
from sfumato.core.cluster import runtime
from sfumato.core.cluster.wire import (
    REPLICA_EVENT,
    pack_message,
    pack_rasters,
    unpack_message,
    unpack_rasters,
)
from sfumato.core.config import Settings

log = logging.getLogger("sfumato.cluster")

ATTEMPTS = 2  # a job whose replica died is retried once, on another replica
PLACEMENTS_KEPT = 1000  # where recent jobs ran (status, tests); older ones are forgotten
FAILED_TEXT = ("the job failed in the Ray cluster ({why}); the daemon log in "
               "SFUMATO_HOME/logs/daemon.log has details")
LOST_TEXT = ("the Ray replica running this job died, {n} times ({why}); the other replicas "
             "serve on. Try a smaller image or tile size, and see the Ray logs of the cluster")


class RayDispatcher:
    """Jobs to the `sfumato` Ray Serve app; satisfies core.worker.dispatch.Dispatcher."""

    restarts = 0
    start_failures = 0

    def __init__(self, settings: Settings, address: str = runtime.LOCAL) -> None:
        self.settings, self.address = settings, address
        self.device = "ray: starting"
        self.ready = False
        self._handle: Any = None
        self._slots = 0
        self._how = ""
        self._events: collections.deque[tuple[Message, list[Raster]]] = collections.deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._lock = threading.Lock()
        self._closed = False  # the wake-up pipe is gone: its numbers may be another file's
        self._streams: dict[str, Any] = {}  # job id -> its live response (to cancel)
        self._cancelled: set[str] = set()
        self.placements: dict[str, str] = {}  # job id -> the replica that ran it (last try)
        self.endings: dict[str, dict] = {}  # job id -> how it ended on its replica

    # --- lifecycle -------------------------------------------------------------------

    def connect(self) -> None:
        """Join (or start) Ray and deploy; raises SfumatoError with what to do. Run before
        the daemon serves, so a wrong address or a missing extra stops `serve` at once."""
        self._how = runtime.connect(self.settings, self.address)
        self._handle, self._slots = runtime.deploy(self.settings)
        self.device = f"ray ({self._slots} replica{'s' * (self._slots != 1)})"
        self.ready = True

    def start(self) -> None:
        if self._handle is None:
            self.connect()

    def stop(self) -> None:
        self.ready = False
        for job_id in list(self._streams):
            self.cancel(job_id)
        if self._how:
            runtime.shutdown(self._how)
            self._how = ""
        with self._lock:  # no job thread writes to a closed (maybe reused) descriptor
            if not self._closed:
                self._closed = True
                os.close(self._wake_r)
                os.close(self._wake_w)

    def start_if_due(self) -> None: ...
    def restart(self) -> None: ...  # Serve replaces dead replicas itself
    def kill(self) -> None: ...
    def pass_on_releases(self) -> None: ...  # no memory files between us and the replicas

    def silent_for(self) -> float:
        return 0.0  # Serve health-checks its replicas; a death surfaces on the job's stream

    def stalled_for(self) -> float:
        return 0.0

    @property
    def health(self) -> dict[str, Any]:
        per_replica = collections.Counter(list(self.placements.values()))  # a copy: threads add
        return {"backend": "ray", "address": self.address, "slots": self._slots,
                "jobs_by_replica": dict(per_replica)}

    def capacity(self) -> int:
        return self._slots if self.ready else 0

    # --- jobs ------------------------------------------------------------------------

    def send_job(self, job_id: str, task: str, model: str | None, params: dict,
                 rasters: list[Raster]) -> None:
        import ray

        frames = pack_message(Submit(id=job_id, task=task, model=model, params=params))
        pixels = [ray.put(item) for item in pack_rasters(rasters)]  # once, for any retry
        self._cancelled.discard(job_id)
        # routed to a replica that holds this model (the task's default when none is named)
        model_key = model or f"{task}:default"
        threading.Thread(target=self._follow, args=(job_id, model_key, frames, pixels),
                         name=f"sfumato-ray-{job_id}", daemon=True).start()

    def cancel(self, job_id: str) -> None:
        with self._lock:
            self._cancelled.add(job_id)
            stream = self._streams.get(job_id)
        if stream is not None:
            stream.cancel()  # Serve cancels the replica's request; the worker stops

    def cancel_requested(self, job_id: str) -> bool:
        return job_id in self._cancelled

    def _follow(self, job_id: str, model_key: str, frames: list[bytes], pixels: list) -> None:
        """One job's stream, on its own thread: events to the loop, one retry on a death."""
        try:
            self._attempts(job_id, model_key, frames, pixels)
        finally:
            self._cancelled.discard(job_id)  # its terminal event is out: nothing to stop

    def _attempts(self, job_id: str, model_key: str, frames: list[bytes], pixels: list) -> None:
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

        why = ""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                if self._run_once(job_id, model_key, frames, pixels):
                    return
                why = "the stream ended before the job did"
            except (ActorDiedError, ActorUnavailableError, RayActorError) as exc:
                why = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            except Exception as exc:  # cancelled requests raise several kinds
                if job_id not in self._cancelled:
                    log.exception("job %s failed in Ray", job_id)
                    self._push(Failed(id=job_id, job_id=job_id, code=ErrorCode.INTERNAL.value,
                                      message=FAILED_TEXT.format(why=type(exc).__name__)), [])
                    return
            finally:
                with self._lock:
                    self._streams.pop(job_id, None)
            if job_id in self._cancelled:
                self._push(Cancelled(id=job_id, job_id=job_id), [])
                return
            log.error("job %s lost its replica (attempt %d): %s", job_id, attempt, why)
        self._push(Failed(id=job_id, job_id=job_id, code=ErrorCode.WORKER_LOST.value,
                          message=LOST_TEXT.format(n=ATTEMPTS, why=why)), [])

    def _run_once(self, job_id: str, model_key: str, frames: list[bytes],
                  pixels: list) -> bool:
        """True once the job's terminal event has been queued."""
        stream = self._handle.options(multiplexed_model_id=model_key, stream=True).run.remote(
            frames, pixels)
        with self._lock:
            if job_id in self._cancelled:  # cancelled before its request went out
                stream.cancel()
                return False
            self._streams[job_id] = stream
        for item in stream:
            if item[0] == REPLICA_EVENT:
                self.placements[job_id] = item[1]
                if item[2]:  # the replica's previous job: how (and at which step) it ended
                    self.endings[item[2]["job_id"]] = item[2]
                for kept in (self.placements, self.endings):
                    if len(kept) > PLACEMENTS_KEPT:
                        del kept[next(iter(kept))]
                continue
            message_frames, packed = item
            message = unpack_message(message_frames)
            terminal = message.TYPE.value in ("result", "failed", "cancelled")
            # a kept result must not pin Ray's store: its pixels are copied out; previews
            # go on as views and are dropped once sent
            self._push(message, unpack_rasters(packed, copy=terminal))
            if terminal:
                return True
        return False

    def _push(self, message: Message, rasters: list[Raster]) -> None:
        self._events.append((message, rasters))
        with self._lock:
            if self._closed:
                return
            try:
                os.write(self._wake_w, b"x")
            except BlockingIOError:
                pass  # the pipe is full: the loop is awake already

    # --- the server loop's side ------------------------------------------------------

    def fileno(self) -> int | None:
        return None if self._closed else self._wake_r

    def has_data(self) -> bool:
        if self._closed:
            return False
        try:
            while os.read(self._wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass
        return bool(self._events)

    def read(self) -> tuple[Message, list[Raster]]:
        return self._events.popleft()
