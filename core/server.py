"""The daemon's front door: one ROUTER socket, one loop.

Ping, status, cancel and fetch are answered at once, whatever the worker is doing: the loop
never runs model code itself. Jobs go through the fair queue to the supervised worker
process; its events are forwarded to the job's client, and each terminal event is kept in
the result store so a client that reconnects can still fetch its result.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import zmq
from sfumato.bridge import codec
from sfumato.bridge.codec import ProtocolError
from sfumato.bridge.protocol import (
    TERMINAL_TYPES,
    Accepted,
    Ack,
    Cancel,
    Cancelled,
    ErrorCode,
    Failed,
    Fetch,
    Hello,
    JobState,
    Message,
    Ping,
    Pong,
    Progress,
    Rejected,
    Status,
    StatusReport,
    Submit,
    Welcome,
)
from sfumato.bridge.raster import Raster

from . import __version__
from .config import Settings
from .errors import SfumatoError
from .job_queue import Job, JobQueue
from .models.registry import Registry
from .result_store import ResultStore
from .submit_checks import check_submit
from .supervisor import WorkerGone, WorkerSupervisor
from .tasks import CATALOGUE

log = logging.getLogger("sfumato.server")

MAX_FRAMES = 24
MAX_ATTEMPTS = 2  # a job whose worker crashed is retried once
MAX_START_FAILURES = 3  # workers in a row dying before ready: waiting jobs fail, not hang


@dataclass
class Daemon:
    settings: Settings
    key: bytes | None = None
    _queue: JobQueue = field(init=False)
    _results: ResultStore = field(init=False)
    _running: Job | None = field(default=None, init=False)
    _last_seen: dict[bytes, float] = field(default_factory=dict, init=False)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1), init=False)
    _stopping: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self._queue = JobQueue(self.settings.max_queue, self.settings.max_queue_per_client)
        self._results = ResultStore(self.settings.result_keep_bytes)
        self._registry = Registry(self.settings.home)
        self._worker = WorkerSupervisor(self.settings)
        self._session = uuid.uuid4().hex[:6]
        self._last_activity = time.monotonic()

    # --- lifecycle ----------------------------------------------------------------------

    def bind(self, context: zmq.Context | None = None) -> str:
        self._context = context or zmq.Context.instance()
        sock = self._context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a gone client raises, so its jobs can end
        sock.setsockopt(zmq.LINGER, 1000)
        # bounded frames: the largest allowed RGBA float raster plus room for JSON
        sock.setsockopt(zmq.MAXMSGSIZE, self.settings.max_pixels * 16 + (1 << 20))
        if self.settings.endpoint.endswith(":0"):
            port = sock.bind_to_random_port(self.settings.endpoint.rsplit(":", 1)[0])
            endpoint = f"{self.settings.endpoint.rsplit(':', 1)[0]}:{port}"
        else:
            sock.bind(self.settings.endpoint)
            endpoint = self.settings.endpoint
        self._socket = sock
        self.endpoint = endpoint
        return endpoint

    def serve(self) -> None:
        self._worker.start()
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        worker_fd: int | None = None
        log.info("serving on %s", self.endpoint)
        try:
            while not self._stopping:
                self._worker.start_if_due()
                current = self._worker.fileno()
                if current != worker_fd:  # a restarted worker has a new pipe
                    if worker_fd is not None:
                        poller.unregister(worker_fd)
                    worker_fd = current
                    if current is not None:
                        poller.register(current, zmq.POLLIN)
                events = dict(poller.poll(250))
                if self._socket in events:
                    self._drain_socket()
                if self._worker.has_data():
                    self._drain_worker()
                self._expire_silent_clients()
                self._start_next_job()
                if self._idle_too_long():
                    log.info("idle for %.0f s: exiting", self.settings.idle_exit_s)
                    break
        finally:
            self._worker.stop()
            self._socket.close(linger=1000)

    def stop(self) -> None:
        self._stopping = True

    # --- client messages ----------------------------------------------------------------

    def _drain_socket(self) -> None:
        for _ in range(64):  # bounded: the worker's events must not starve
            try:
                parts = self._socket.recv_multipart(flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._last_activity = time.monotonic()
            identity = parts[0].bytes
            self._last_seen[identity] = time.monotonic()
            frames = [p.buffer for p in parts[1:]]
            if len(frames) > MAX_FRAMES:
                self._reply(identity, Rejected(id="", code=ErrorCode.BAD_FRAME.value,
                                               message=f"too many frames ({len(frames)})"))
                continue
            try:
                message, rasters = codec.decode(frames, self.key)
            except ProtocolError as exc:
                self._reply(identity, Rejected(id=exc.request_id, code=exc.code.value,
                                               message=exc.message))
                continue
            try:
                self._handle(identity, message, rasters)
            except SfumatoError as exc:
                self._reply(identity, Rejected(id=message.id, code=exc.code.value,
                                               message=exc.message))

    def _handle(self, identity: bytes, message: Message, rasters: list[Raster]) -> None:
        if isinstance(message, Ping):
            self._reply(identity, Pong(id=message.id), rasters)  # echo: a transport probe
        elif isinstance(message, Hello):
            self._reply(identity, self._welcome(message.id))
        elif isinstance(message, Status):
            self._reply(identity, self._status(message.id))
        elif isinstance(message, Submit):
            self._submit(identity, message, rasters)
        elif isinstance(message, Cancel):
            self._cancel(identity, message)
        elif isinstance(message, Fetch):
            self._fetch(identity, message)
        else:
            raise SfumatoError(ErrorCode.UNKNOWN_TYPE,
                               f"{message.TYPE.value} is a daemon-to-client message")

    def _welcome(self, request_id: str) -> Welcome:
        return Welcome(
            id=request_id,
            daemon_version=__version__,
            tasks=sorted(CATALOGUE),
            models=[e.describe() for e in self._registry.entries()],
            device=self._worker.device,
            limits={"max_pixels": self.settings.max_pixels, "max_queue": self.settings.max_queue},
        )

    def _status(self, request_id: str) -> StatusReport:
        return StatusReport(
            id=request_id,
            daemon_version=__version__,
            device=self._worker.device,
            running=self._running.describe() if self._running else None,
            queued=[job.describe() for job in self._queue.order()],
            models=[e.describe() for e in self._registry.entries()],
            worker={**self._worker.health, "ready": self._worker.ready,
                    "restarts": self._worker.restarts, "daemon_pid": os.getpid()},
        )

    def _submit(self, identity: bytes, message: Submit, rasters: list[Raster]) -> None:
        check_submit(message, rasters, self.settings, self._registry)
        job = Job(
            job_id=f"{self._session}-{next(self._ids)}",
            request_id=message.id,
            client=identity,
            task=message.task,
            model=message.model,
            params=message.params,
            rasters=rasters,  # zero-copy views; each keeps its zmq frame alive
        )
        position = self._queue.push(job)
        if self._running is not None:
            position += 1
        self._reply(identity, Accepted(id=message.id, job_id=job.job_id, position=position))

    def _cancel(self, identity: bytes, message: Cancel) -> None:
        queued = self._queue.remove(message.job_id)
        if queued is not None:
            self._reply(identity, Ack(id=message.id, job_id=message.job_id,
                                      state=JobState.CANCELLED.value))
            self._finish(queued, Cancelled(id=queued.request_id, job_id=queued.job_id), [])
            return
        if self._running is not None and self._running.job_id == message.job_id:
            self._worker.cancel_flag.set()  # the worker stops at the next tile or step
            self._reply(identity, Ack(id=message.id, job_id=message.job_id,
                                      state=JobState.RUNNING.value))
            return
        stored = self._results.get(message.job_id)
        state = stored[0].TYPE.value if stored else "unknown"
        self._reply(identity, Ack(id=message.id, job_id=message.job_id, state=state))

    def _fetch(self, identity: bytes, message: Fetch) -> None:
        """Re-attach a (re)connected client to a job: live events or the kept result."""
        stored = self._results.get(message.job_id)
        if stored is not None:
            terminal, rasters = stored
            self._reply(identity, _with_id(terminal, message.id), rasters)
            return
        job = self._queue.find(message.job_id)
        if job is None and self._running is not None and self._running.job_id == message.job_id:
            job = self._running
        if job is None:
            raise SfumatoError(ErrorCode.NOT_FOUND,
                               f"no job {message.job_id!r}: it finished long ago or never ran")
        job.client = identity
        job.request_id = message.id
        self._reply(identity, Ack(id=message.id, job_id=job.job_id, state=job.state.value))

    # --- the worker ---------------------------------------------------------------------

    def _start_next_job(self) -> None:
        if self._running is not None or not self._worker.ready:
            return
        job = self._queue.pop_next()
        if job is None:
            return
        job.state = JobState.RUNNING
        job.started_at = time.monotonic()
        job.attempts += 1
        self._running = job
        try:
            self._worker.send_job(job.job_id, job.task, job.model, job.params, job.rasters)
        except WorkerGone as exc:
            self._worker_died(str(exc))

    def _drain_worker(self) -> None:
        while self._worker.has_data():
            try:
                message, rasters = self._worker.read()
            except WorkerGone as exc:
                self._worker_died(str(exc))
                return
            except ProtocolError as exc:
                log.error("bad frames from the worker: %s", exc)
                continue
            self._last_activity = time.monotonic()
            job = self._running
            if job is None or getattr(message, "job_id", None) != job.job_id:
                continue  # the ready report, or a stray event after a cancel race
            if isinstance(message, Progress):
                job.progress = (message.step, message.total)
            if message.TYPE in TERMINAL_TYPES:
                self._running = None
                self._finish(job, _with_id(message, job.request_id), rasters)
            else:
                self._reply(job.client, _with_id(message, job.request_id), rasters)

    def _worker_died(self, why: str) -> None:
        log.error("worker died: %s", why)
        job, self._running = self._running, None
        self._worker.restart()
        if self._worker.start_failures >= MAX_START_FAILURES:
            self._fail_waiting(why)  # it keeps being restarted; new jobs may still succeed
        if job is None:
            return
        cancelled = self._worker.cancel_flag.is_set()
        if job.attempts < MAX_ATTEMPTS and not cancelled:
            job.state = JobState.QUEUED
            self._queue.push(job)  # retried first thing once the new worker is ready
            return
        self._finish(job, Failed(
            id=job.request_id, job_id=job.job_id, code=ErrorCode.WORKER_CRASHED.value,
            message=f"the worker process died running this job ({why}) and was restarted; "
            "try a smaller image or tile size, and see SFUMATO_HOME/logs/worker.log",
        ), [])

    def _fail_waiting(self, why: str) -> None:
        """Fail every queued job: the worker cannot even start, so they would wait forever."""
        while (job := self._queue.pop_next()) is not None:
            self._finish(job, Failed(
                id=job.request_id, job_id=job.job_id, code=ErrorCode.WORKER_CRASHED.value,
                message=f"the worker process cannot start ({why}); run `sfumato doctor` and "
                "see SFUMATO_HOME/logs/worker.log",
            ), [])

    def _finish(self, job: Job, terminal: Message, rasters: list[Raster]) -> None:
        job.state = {
            "result": JobState.DONE, "failed": JobState.FAILED, "cancelled": JobState.CANCELLED
        }[terminal.TYPE.value]
        self._results.put(job.job_id, terminal, rasters)
        self._reply(job.client, terminal, rasters)

    # --- clients that went away ---------------------------------------------------------

    def _reply(
        self, identity: bytes, message: Message, rasters: Sequence[Raster] = ()
    ) -> None:
        frames = codec.encode(message, rasters, self.key)
        try:
            self._socket.send_multipart([identity, *frames], copy=False, flags=zmq.NOBLOCK)
        except zmq.Again:
            log.warning("client %s is not reading: dropped a %s", identity.hex(),
                        message.TYPE.value)
        except zmq.ZMQError as exc:  # EHOSTUNREACH: the peer disconnected
            log.info("client %s unreachable (%s): dropping its jobs", identity.hex(), exc)
            self._client_gone(identity)

    def _client_gone(self, identity: bytes) -> None:
        """Drop a gone client's queued jobs. Its running job finishes and its result is kept,
        so a plug-in that reconnects (or `Client.attach`) still gets the artist's work."""
        self._last_seen.pop(identity, None)
        for job in self._queue.drop_client(identity):
            job.state = JobState.CANCELLED
            self._results.put(job.job_id, Cancelled(id=job.request_id, job_id=job.job_id), [])

    def _expire_silent_clients(self) -> None:
        now = time.monotonic()
        for identity in self._queue.clients():
            seen = self._last_seen.get(identity, now)
            if now - seen > self.settings.client_timeout_s:
                log.info("client %s silent for %.0f s", identity.hex(), now - seen)
                self._client_gone(identity)
        # forget long-silent clients with nothing waiting, so the table does not grow forever
        busy = {self._running.client} if self._running is not None else set()
        for identity, seen in list(self._last_seen.items()):
            if now - seen > self.settings.client_timeout_s and identity not in busy:
                del self._last_seen[identity]

    def _idle_too_long(self) -> bool:
        if self.settings.idle_exit_s <= 0 or self._running is not None or len(self._queue):
            return False
        return time.monotonic() - self._last_activity > self.settings.idle_exit_s


def _with_id(message: Message, request_id: str) -> Message:
    return replace(message, id=request_id)

