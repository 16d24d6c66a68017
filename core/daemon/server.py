"""The daemon's front door: one ROUTER socket, one loop.

Ping, status, cancel and fetch are answered at once, whatever the worker is doing: the loop
never runs model code itself. Jobs go through the fair queue to the supervised worker
process; its events are forwarded to the job's client, and each terminal event is kept in
the result store so a client that reconnects can still fetch its result.

A client is its ZeroMQ routing id under the key it proved (peer_keys.py, live_connections.py):
its jobs and kept results are its own. Fairness goes by the proven key (client_auth.py), so
one program with many ids takes one turn and one identity's share of the queue.
SIGTERM stops admitting work, tells waiting clients, lets the running job finish (or cancels
it) within `stop_timeout_s`, and takes the worker process down with the daemon.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import zmq
from sfumato.bridge import codec
from sfumato.bridge.codec import ProtocolError
from sfumato.bridge.local_ipc import remove_door
from sfumato.bridge.private_ipc import check_private_ipc, make_private
from sfumato.bridge.protocol import (
    TERMINAL_TYPES,
    Accepted,
    Ack,
    Cancel,
    Cancelled,
    ErrorCode,
    Failed,
    Fetch,
    Goodbye,
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
from sfumato.bridge.shared_pixels import daemon_pixels
from sfumato.core.config import Settings
from sfumato.core.daemon.admission import check_submit
from sfumato.core.daemon.client_auth import ClientAuth, proven_identity
from sfumato.core.daemon.client_names import ClientNames
from sfumato.core.daemon.job_log import job_line
from sfumato.core.daemon.job_queue import Job, JobQueue
from sfumato.core.daemon.limits import max_frame_bytes, raise_open_files_limit
from sfumato.core.daemon.live_connections import LiveConnections
from sfumato.core.daemon.peer_keys import BORROWED_ID, PeerKeys, check_owner
from sfumato.core.daemon.reply_backlog import ReplyBacklog
from sfumato.core.daemon.reports import status_report, welcome
from sfumato.core.daemon.result_receipts import ResultReceipts
from sfumato.core.daemon.result_store import ResultStore
from sfumato.core.daemon.watchdog import hang_reason
from sfumato.core.errors import SfumatoError
from sfumato.core.models.registry import Registry
from sfumato.core.worker.dispatch import Dispatcher
from sfumato.core.worker.supervisor import HEARTBEAT_ID, WorkerGone, WorkerSupervisor

log = logging.getLogger("sfumato.server")

MAX_FRAMES = 24
MAX_ATTEMPTS = 2  # a job whose worker crashed is retried once
MAX_START_FAILURES = 3  # workers in a row dying before ready: waiting jobs fail, not hang
RECEIVE_QUEUE = 64  # messages buffered per client; a flood waits in its own TCP buffers
CANCEL_GRACE_S = 10.0  # after the stop timeout, how long a cancelled job may take to stop
AUTH_REFRESH_S = 1.0
HEARTBEAT_IVL_MS, HEARTBEAT_TIMEOUT_MS = 5000, 20000  # ZMTP pings; silent this long: dropped
AGAIN_TEXT = "run this again once a daemon is back (any sfumato command starts one)"
STOPPING_TEXT = f"the daemon is shutting down; nothing was changed: {AGAIN_TEXT}"
INTERNAL_TEXT = ("the daemon could not handle this request; its log in "
                 "SFUMATO_HOME/logs/daemon.log has details")
TOO_LONG_TEXT = f"the daemon was asked to stop and this job did not finish in time; {AGAIN_TEXT}"


@dataclass
class Daemon:
    settings: Settings
    key: bytes | None = None
    worker: Dispatcher | None = None  # runs the jobs: the supervised worker unless given (Ray)
    _queue: JobQueue = field(init=False)
    _results: ResultStore = field(init=False)
    _running: dict[str, Job] = field(default_factory=dict, init=False)  # by job id
    _last_seen: dict[bytes, float] = field(default_factory=dict, init=False)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1), init=False)
    _stopping: bool = field(default=False, init=False)  # leave the loop now
    _stop_at: float | None = field(default=None, init=False)  # draining since
    _stop_cancelled: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self._queue = JobQueue(self.settings.max_queue, self.settings.max_queue_per_client,
                               max_per_identity=self.settings.max_queue_per_identity)
        self._results = ResultStore(self.settings.result_keep_bytes, self.settings.result_keep_s)
        self._auth = ClientAuth(self.settings.home, self.settings.endpoint,
                                self.settings.curve_on_loopback)
        self._peers = PeerKeys()  # client id -> the key it proved: ownership and fairness
        self._auth_checked = 0.0
        self._registry = Registry(self.settings.home)
        self._worker: Dispatcher = self.worker or WorkerSupervisor(self.settings)
        # pixels through shared memory for clients on this machine that ask for it
        self._pixels = daemon_pixels(self.settings.shared_memory)
        self._receipts = ResultReceipts()
        self._names = ClientNames()  # readable client labels for logs and status
        self._backlog = ReplyBacklog()
        self._session = uuid.uuid4().hex[:6]
        self._last_activity = time.monotonic()

    # --- lifecycle ----------------------------------------------------------------------

    def bind(self, context: zmq.Context | None = None) -> str:
        self._context = context or zmq.Context.instance()
        sock = self._context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a gone client raises, so its jobs can end
        # No handover: naming a live client's id cannot take its replies. Heartbeats end a
        # connection whose peer vanished, freeing its id for that program's reconnection.
        sock.setsockopt(zmq.ROUTER_HANDOVER, 0)
        sock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
        sock.setsockopt(zmq.LINGER, 1000)
        # Bounded frames: zmq drops the connection of a peer sending a frame over this (the
        # largest allowed RGBA float raster plus room for JSON); others are not affected.
        sock.setsockopt(zmq.MAXMSGSIZE, max_frame_bytes(self.settings))
        sock.setsockopt(zmq.RCVHWM, RECEIVE_QUEUE)
        self.door = self._auth.open_door(sock, self.settings.endpoint)  # before CURVE
        self._auth.secure(self._context, sock)  # CURVE on every TCP endpoint, or refuse
        check_private_ipc(self.settings.endpoint)  # no abstract @name, no folder others write
        if self.settings.endpoint.endswith(":0"):
            port = sock.bind_to_random_port(self.settings.endpoint.rsplit(":", 1)[0])
            endpoint = f"{self.settings.endpoint.rsplit(':', 1)[0]}:{port}"
        else:
            sock.bind(self.settings.endpoint)
            endpoint = self.settings.endpoint
            make_private(endpoint)  # an ipc socket file: only this user may connect
        self._socket = sock
        self._live = LiveConnections(sock)
        self.endpoint = endpoint
        return endpoint

    def serve(self) -> None:
        raise_open_files_limit()
        self._worker.start()
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        worker_fd: int | None = None
        log.info("serving on %s%s", self.endpoint,
                 f" (this user's programs: {self.door})" if self.door else "")
        try:
            while not self._stopping:
                current = self._worker.fileno()
                if current != worker_fd:  # a restarted worker has a new pipe
                    if worker_fd is not None:
                        poller.unregister(worker_fd)
                    worker_fd = current
                    if current is not None:
                        poller.register(current, zmq.POLLIN)
                events = dict(poller.poll(250))
                try:
                    self._turn(self._socket in events)
                except Exception:  # last resort: a bug costs one turn, never the daemon
                    log.exception("the serve loop hit an unexpected error; serving on")
                if self._idle_too_long():
                    log.info("idle for %.0f s: exiting", self.settings.idle_exit_s)
                    break
        finally:
            self._abandon_running(STOPPING_TEXT)
            self._worker.stop()
            self._auth.stop()
            self._live.close()
            if self._pixels is not None:
                self._pixels.close()
            self._socket.close(linger=1000)
            if self.door is not None:
                remove_door(self.door)

    def _turn(self, socket_ready: bool) -> None:
        """One round of the loop: client messages, worker events, timers."""
        self._worker.start_if_due()
        if socket_ready:
            self._drain_socket()
        if self._worker.has_data():
            self._drain_worker()
        self._check_watchdog()
        self._expire_silent_clients()
        self._refresh_auth()
        if self._stop_at is not None:
            self._drain_for_stop()
        else:
            self._start_next_job()
        if not self._running:
            self._worker.pass_on_releases()  # files an idle worker may now let go
        if self._pixels is not None:
            self._pixels.expire()  # reply files nobody reads or reuses any more

    def stop(self) -> None:
        """Begin a graceful stop (SIGTERM): refuse new work, tell waiting clients, give the
        running job `stop_timeout_s` to finish, then cancel it. A second call stops at once."""
        if self._stop_at is not None:
            self._stopping = True
            return
        self._stop_at = time.monotonic()
        log.info("stopping: no new jobs; waiting up to %.0f s for the running one",
                 self.settings.stop_timeout_s)

    def _drain_for_stop(self) -> None:
        started = self._stop_at if self._stop_at is not None else time.monotonic()
        for job in self._queue.drain():
            self._finish(job, self._stopping_failure(job), [])
        if not self._running:
            self._stopping = True
            return
        waited = time.monotonic() - started
        if waited > self.settings.stop_timeout_s and not self._stop_cancelled:
            log.info("stop timeout: cancelling %s", ", ".join(self._running))
            self._stop_cancelled = True
            for job_id in self._running:
                self._worker.cancel(job_id)
        if waited > self.settings.stop_timeout_s + CANCEL_GRACE_S:
            self._stopping = True  # the worker does not stop: it is killed on the way out

    def _abandon_running(self, why: str) -> None:
        """Tell running jobs' clients their jobs end with the daemon (they are not retried)."""
        jobs, self._running = list(self._running.values()), {}
        for job in jobs:
            self._finish(job, self._stopping_failure(job, why), [])

    def _stopping_failure(self, job: Job, why: str = STOPPING_TEXT) -> Failed:
        return Failed(id=job.request_id, job_id=job.job_id,
                      code=ErrorCode.DAEMON_STOPPING.value, message=why)

    def _refresh_auth(self) -> None:
        now = time.monotonic()
        if now - self._auth_checked > AUTH_REFRESH_S:
            self._auth_checked = now
            self._auth.refresh()

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
            key = proven_identity(parts[-1], self._auth.local_key)
            if key is None:  # another user's program on an ipc socket: told nothing
                continue
            if not self._peers.admit(identity, key):
                self._refuse_borrowed_id(identity, [p.buffer for p in parts[1:]])
                continue
            self._live.proved(identity, parts[-1])
            try:
                self._serve_message(identity, [p.buffer for p in parts[1:]])
            except Exception:  # last resort: one bad message costs its answer, nothing else
                log.exception("a message from %s could not be handled",
                              self._names.name(identity))
                self._refuse(identity, "", ErrorCode.INTERNAL, INTERNAL_TEXT)

    def _serve_message(self, identity: bytes, frames: list[memoryview]) -> None:
        if len(frames) > MAX_FRAMES:
            self._refuse(identity, "", ErrorCode.BAD_FRAME, f"too many frames ({len(frames)})")
            return
        try:
            if self._pixels is not None:
                self._pixels.receiving_from(identity)
            message, rasters = codec.decode(frames, self.key, self._pixels,
                                            max_bytes=max_frame_bytes(self.settings))
            if self._pixels is not None:
                self._pixels.note_peer(identity)
                self._drop_read_results(identity, self._pixels.released)
        except ProtocolError as exc:
            self._refuse(identity, exc.request_id, exc.code, exc.message)
            return
        try:
            self._handle(identity, message, rasters)
        except SfumatoError as exc:
            self._refuse(identity, message.id, exc.code, exc.message)
        except Exception:  # a bug must cost one request, never the daemon
            log.exception("request %s from %s failed", message.TYPE.value,
                          self._names.name(identity))
            self._refuse(identity, message.id, ErrorCode.INTERNAL, INTERNAL_TEXT)

    def _refuse(self, identity: bytes, request_id: str, code: ErrorCode, text: str) -> None:
        try:
            self._reply(identity, Rejected(id=request_id, code=code.value, message=text))
        except Exception:  # even the refusal failed (e.g. out of memory): log, serve on
            log.exception("could not refuse a message from %s", self._names.name(identity))

    def _handle(self, identity: bytes, message: Message, rasters: list[Raster]) -> None:
        if isinstance(message, Ping):
            held = self._pixels.backlog(identity) if self._pixels is not None else 0
            self._backlog.check_echo(identity, rasters, held, self.settings.client_reply_bytes)
            self._reply(identity, Pong(id=message.id), rasters)  # echo: a transport probe
        elif isinstance(message, Hello):
            self._names.note(identity, message.client)
            self._reply(identity, self._welcome(message.id, identity))
        elif isinstance(message, Goodbye):
            self._goodbye(identity)
        elif isinstance(message, Status):
            self._reply(identity, self._status(message.id, identity))
        elif isinstance(message, Submit):
            self._submit(identity, message, rasters)
        elif isinstance(message, Cancel):
            self._cancel(identity, message)
        elif isinstance(message, Fetch):
            self._fetch(identity, message)
        else:
            raise SfumatoError(ErrorCode.UNKNOWN_TYPE,
                               f"{message.TYPE.value} is a daemon-to-client message")

    def _welcome(self, request_id: str, identity: bytes) -> Welcome:
        return welcome(request_id, self.settings, self._registry, self._worker,
                       self._results.missed_by(identity, self._peers.key(identity)))

    def _status(self, request_id: str, identity: bytes) -> StatusReport:
        return status_report(request_id, identity, self._registry, self._worker,
                             list(self._running.values()), self._queue.order())

    def _submit(self, identity: bytes, message: Submit, rasters: list[Raster]) -> None:
        if self._stop_at is not None:
            raise SfumatoError(ErrorCode.DAEMON_STOPPING, STOPPING_TEXT)
        check_submit(message, rasters, self.settings, self._registry)
        job = Job(
            job_id=f"{self._session}-{next(self._ids)}",
            request_id=message.id,
            client=identity,
            task=message.task,
            model=message.model,
            params=message.params,
            rasters=rasters,  # zero-copy views; each keeps its zmq frame alive
            label=self._names.note(identity, message.client),
            identity=self._peers.key(identity),
        )
        position = self._queue.push(job) + len(self._running)
        self._reply(identity, Accepted(id=message.id, job_id=job.job_id, position=position))

    def _cancel(self, identity: bytes, message: Cancel) -> None:
        self._check_owner(identity, message.job_id, "cancel")
        queued = self._queue.remove(message.job_id)
        if queued is not None:
            self._reply(identity, Ack(id=message.id, job_id=message.job_id,
                                      state=JobState.CANCELLED.value))
            self._finish(queued, Cancelled(id=queued.request_id, job_id=queued.job_id), [])
            return
        if message.job_id in self._running:
            self._worker.cancel(message.job_id)  # it stops at the next tile or step
            self._reply(identity, Ack(id=message.id, job_id=message.job_id,
                                      state=JobState.RUNNING.value))
            return
        stored = self._results.get(message.job_id)
        state = stored[0].TYPE.value if stored else "unknown"
        self._reply(identity, Ack(id=message.id, job_id=message.job_id, state=state))

    def _goodbye(self, identity: bytes) -> None:
        """A client leaving on purpose: its waiting jobs end, its running one is cancelled."""
        for job in self._queue.drop_client(identity):
            self._finish(job, Cancelled(id=job.request_id, job_id=job.job_id), [])
        for job in self._running.values():
            if job.client == identity:
                log.info("%s said goodbye: cancelling job %s", self._names.name(identity),
                         job.job_id)
                self._worker.cancel(job.job_id)
        self._names.forget(identity)

    def _fetch(self, identity: bytes, message: Fetch) -> None:
        """Re-attach a (re)connected client to its job: live events or the kept result."""
        self._check_owner(identity, message.job_id, "fetch")
        stored = self._results.find(message.job_id)
        if stored is not None:
            if self._reply(identity, _with_id(stored.message, message.id), stored.rasters):
                self._results.mark_delivered(message.job_id)
            return
        job = self._queue.find(message.job_id) or self._running.get(message.job_id)
        if job is None:
            raise SfumatoError(ErrorCode.NOT_FOUND,
                               f"no job {message.job_id!r}: it finished long ago or never ran")
        job.request_id = message.id
        if job.job_id in self._running:  # its events follow (a queued job keeps its lane)
            job.client = identity
        self._reply(identity, Ack(id=message.id, job_id=job.job_id, state=job.state.value))

    def _check_owner(self, identity: bytes, job_id: str, what: str) -> None:
        check_owner(self._owner(job_id), identity, self._peers.key(identity), job_id, what,
                    self._names.name(identity))

    def _owner(self, job_id: str) -> tuple[bytes, bytes] | None:
        """The client id and the key of the program that submitted `job_id`."""
        job = self._running.get(job_id) or self._queue.find(job_id)
        if job is not None:
            return job.client, job.identity
        stored = self._results.find(job_id)
        return (stored.owner, stored.owner_key) if stored is not None else None

    def _refuse_borrowed_id(self, identity: bytes, frames: list[memoryview]) -> None:
        log.warning("a client with another key used the id of %s", self._names.name(identity))
        # never decoded (its pixels are not opened); the answer goes only to a proven id
        self._refuse(identity, codec.request_id_of(frames), ErrorCode.FORBIDDEN, BORROWED_ID)

    # --- the worker ---------------------------------------------------------------------

    def _start_next_job(self) -> None:
        while len(self._running) < self._worker.capacity():
            job = self._queue.pop_next()
            if job is None:
                return
            self._send(job)

    def _send(self, job: Job) -> None:
        job.state = JobState.RUNNING
        job.started_at = time.monotonic()
        job.attempts += 1
        self._running[job.job_id] = job
        try:
            self._worker.send_job(job.job_id, job.task, job.model, job.params, job.rasters)
        except WorkerGone as exc:
            self._worker_died(str(exc))
        except Exception:  # the job could not even be written to the worker: fail it alone
            log.exception("job %s could not be sent to the worker", job.job_id)
            self._running.pop(job.job_id, None)
            self._finish(job, Failed(id=job.request_id, job_id=job.job_id,
                                     code=ErrorCode.INTERNAL.value, message=INTERNAL_TEXT), [])

    def _check_watchdog(self) -> None:
        """A hung or stuck worker (watchdog.py) is killed and replaced, and its job retried
        once or failed `worker_lost`."""
        why = hang_reason(self.settings, self._worker) if self._running else None
        if why is None:
            return
        log.error("%s running %s: killing it", why, ", ".join(self._running))
        self._worker.kill()
        self._worker_died(why)

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
            if message.id == HEARTBEAT_ID:
                continue  # only the watchdog cares
            self._last_activity = time.monotonic()
            job = self._running.get(getattr(message, "job_id", None) or "")
            if job is None:
                continue  # the ready report, or a stray event after a cancel race
            if isinstance(message, Progress):
                job.progress = (message.step, message.total)
                job.stage = message.stage
            if message.TYPE in TERMINAL_TYPES:
                del self._running[job.job_id]
                if isinstance(message, Cancelled) and self._stop_cancelled:
                    message = self._stopping_failure(job, TOO_LONG_TEXT)
                self._finish(job, _with_id(message, job.request_id), rasters)
            else:
                self._reply(job.client, _with_id(message, job.request_id), rasters)

    def _worker_died(self, why: str) -> None:
        log.error("worker died: %s", why)
        if self._stop_at is not None:
            self._abandon_running(STOPPING_TEXT)  # no new worker for a daemon on its way out
            self._stopping = True
            return
        jobs, self._running = list(self._running.values()), {}
        self._worker.restart()
        if self._worker.start_failures >= MAX_START_FAILURES:
            self._fail_waiting(why)  # it keeps being restarted; new jobs may still succeed
        for job in jobs:
            self._retry_or_lose(job, why)

    def _retry_or_lose(self, job: Job, why: str) -> None:
        if self._worker.cancel_requested(job.job_id):
            self._finish(job, Cancelled(id=job.request_id, job_id=job.job_id), [])
            return
        if job.attempts < MAX_ATTEMPTS:
            log.info("retrying job %s on a fresh worker", job.job_id)
            job.state = JobState.QUEUED
            self._queue.retry_first(job)  # it runs first once the new worker is ready
            return
        self._finish(job, Failed(
            id=job.request_id, job_id=job.job_id, code=ErrorCode.WORKER_LOST.value,
            message=f"the worker process died or hung running this job, {job.attempts} times "
            f"({why}); a fresh worker serves other jobs. Try a smaller image or tile size, "
            "and see SFUMATO_HOME/logs/worker.log",
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
        log.info(job_line(job, terminal))
        self._results.put(job.job_id, terminal, rasters, owner=job.client,
                          owner_key=job.identity)
        if self._reply(job.client, terminal, rasters):
            self._results.mark_delivered(job.job_id)
            if self._pixels is not None:
                self._receipts.sent(job.job_id, job.client, self._pixels.placed)

    def _drop_read_results(self, identity: bytes, released: list[str]) -> None:
        """Results this client has read and let go of need not wait for a re-fetch: their
        memory (and the worker's file they came in) is free again."""
        for job_id in self._receipts.released(identity, released):
            self._results.forget(job_id)

    # --- clients that went away ---------------------------------------------------------

    def _reply(
        self, identity: bytes, message: Message, rasters: Sequence[Raster] = ()
    ) -> bool:
        """Send to one client without ever blocking; False when it could not go out (or
        its id is not on the connection that proved it: live_connections.py)."""
        if not self._live.may_send(identity):
            self._unreachable(identity, "its connection closed")
            return False
        pixels = self._pixels.for_peer(identity) if self._pixels is not None else None
        if self._pixels is not None:
            self._pixels.placed.clear()
        frames = codec.encode(message, rasters, self.key, pixels)
        framed = sum(memoryview(frame).nbytes for frame in frames[3:3 + len(rasters)])
        try:
            tracker = self._socket.send_multipart([identity, *frames], copy=False,
                                                  flags=zmq.NOBLOCK, track=framed > 0)
            if framed:
                self._backlog.note(identity, tracker, framed)
        except zmq.Again:
            log.warning("client %s is not reading: dropped a %s", self._names.name(identity),
                        message.TYPE.value)
            return False
        except zmq.ZMQError as exc:  # EHOSTUNREACH: the peer disconnected
            self._unreachable(identity, str(exc))
            return False
        return True

    def _unreachable(self, identity: bytes, why: str) -> None:
        if identity in self._last_seen:  # said once, not once per event of its job
            log.info("client %s unreachable (%s): dropping its queued jobs",
                     self._names.name(identity), why)
        self._client_gone(identity)

    def _client_gone(self, identity: bytes) -> None:
        """Drop a gone client's queued jobs. Its running job finishes and its result is kept,
        so a plug-in that reconnects (or `Client.attach`) still gets the artist's work."""
        self._last_seen.pop(identity, None)
        self._backlog.forget(identity)
        for job in self._queue.drop_client(identity):
            job.state = JobState.CANCELLED
            self._results.put(job.job_id, Cancelled(id=job.request_id, job_id=job.job_id), [],
                              owner=identity, owner_key=job.identity)

    def _expire_silent_clients(self) -> None:
        now = time.monotonic()
        for identity in self._queue.clients():
            seen = self._last_seen.get(identity, now)
            if now - seen > self.settings.client_timeout_s:
                log.info("client %s silent for %.0f s", self._names.name(identity), now - seen)
                self._client_gone(identity)
        # forget long-silent clients with nothing waiting, so the table does not grow forever
        busy = {job.client for job in self._running.values()}
        for identity, seen in list(self._last_seen.items()):
            if now - seen > self.settings.client_timeout_s and identity not in busy:
                del self._last_seen[identity]
                self._peers.forget(identity)
                self._live.forget(identity)
                self._names.forget(identity)
        self._backlog.sweep()

    def _idle_too_long(self) -> bool:
        if self.settings.idle_exit_s <= 0 or self._running or len(self._queue):
            return False
        return time.monotonic() - self._last_activity > self.settings.idle_exit_s


def _with_id(message: Message, request_id: str) -> Message:
    return replace(message, id=request_id)

