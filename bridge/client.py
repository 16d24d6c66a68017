"""Talking to the daemon: requests with timeouts, job event streams with heartbeats, and
reconnect-and-fetch so that a result survives a dropped connection.

Standard library + the transport module only: this runs inside GIMP's and Krita's Python.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from . import codec
from .codec import ProtocolError
from .protocol import (
    TERMINAL_TYPES,
    Accepted,
    Ack,
    Cancel,
    Cancelled,
    ErrorCode,
    Failed,
    Fetch,
    Hello,
    Message,
    Ping,
    Pong,
    Rejected,
    Result,
    Status,
    StatusReport,
    Submit,
    Welcome,
)
from .raster import Raster
from .transport import DealerTransport, key_from_env, resolve_endpoint


class ClientError(Exception):
    """Base of everything the client raises; `code` is an ErrorCode value."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class DaemonUnavailable(ClientError):
    pass


class RequestRejected(ClientError):
    pass


class JobFailed(ClientError):
    pass


class JobCancelledError(ClientError):
    pass


@dataclass
class Job:
    job_id: str
    request_id: str
    position: int


@dataclass
class JobOutcome:
    result: Result
    rasters: list[Raster]
    events: list[Message] = field(default_factory=list)


Event = tuple[Message, list[Raster]]
M = TypeVar("M", bound=Message)


class Client:
    """One connection to the daemon. Not thread-safe: use one per thread."""

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        timeout_s: float = 10.0,
        heartbeat_s: float = 2.0,
        reconnects: int = 3,
        key: bytes | None = None,
        name: str = "sfumato",
    ) -> None:
        self.endpoint = resolve_endpoint(endpoint)
        self.timeout_s = timeout_s
        self.heartbeat_s = heartbeat_s
        self.reconnects = reconnects
        self.key = key if key is not None else key_from_env()
        self.name = name
        self._transport = DealerTransport(self.endpoint)
        self._ids = itertools.count(1)
        self._prefix = uuid.uuid4().hex[:8]
        self._inbox: dict[str, deque[Event]] = {}

    # --- simple requests ----------------------------------------------------------------

    def hello(self) -> Welcome:
        reply, _ = self._request(Hello(id=self._next_id(), client=self.name))
        return _expect(reply, Welcome)

    def ping(self, rasters: Sequence[Raster] = (), timeout_s: float | None = None) -> list[Raster]:
        """Round trip; attached rasters come back unchanged (a transport probe)."""
        reply, echoed = self._request(Ping(id=self._next_id()), rasters, timeout_s)
        _expect(reply, Pong)
        return echoed

    def status(self) -> StatusReport:
        reply, _ = self._request(Status(id=self._next_id()))
        return _expect(reply, StatusReport)

    def cancel(self, job_id: str) -> Ack:
        reply, _ = self._request(Cancel(id=self._next_id(), job_id=job_id))
        return _expect(reply, Ack)

    def submit(
        self,
        task: str,
        params: dict | None = None,
        rasters: Sequence[Raster] = (),
        model: str | None = None,
    ) -> Job:
        request = Submit(id=self._next_id(), task=task, model=model, params=dict(params or {}))
        reply, _ = self._request(request, rasters)
        if isinstance(reply, Accepted):
            return Job(job_id=reply.job_id, request_id=request.id, position=reply.position)
        raise _unexpected(reply)

    def attach(self, job_id: str) -> Job:
        """Follow a job submitted earlier, e.g. by a connection that has since gone: its
        remaining events, or its kept result, come to this client."""
        request = Fetch(id=self._next_id(), job_id=job_id)
        self._send(request)
        return Job(job_id=job_id, request_id=request.id, position=0)

    # --- job events ---------------------------------------------------------------------

    def events(self, job: Job, should_cancel: Callable[[], bool] | None = None) -> Iterator[Event]:
        """Yield the job's events up to and including its terminal one.

        Sends a heartbeat ping whenever the daemon has been quiet for `heartbeat_s`; when it
        stays silent past `timeout_s`, reconnects and re-attaches to the job with `fetch`.
        """
        cancel_sent = False
        last_heard = time.monotonic()
        last_ping = 0.0
        attempts = 0
        while True:
            if should_cancel is not None and not cancel_sent and should_cancel():
                self._send(Cancel(id=self._next_id(), job_id=job.job_id))
                cancel_sent = True
            event = self._take(job.request_id) or self._receive(min(self.heartbeat_s, 0.25))
            now = time.monotonic()
            if event is None:
                if now - last_heard > self.timeout_s:
                    attempts += 1
                    if attempts > self.reconnects:
                        raise DaemonUnavailable(
                            ErrorCode.DAEMON_UNAVAILABLE.value,
                            f"the daemon at {self.endpoint} stopped answering while job "
                            f"{job.job_id} ran; it keeps finished results, so check "
                            "`sfumato status` and try again",
                        )
                    self._reattach(job, attempts)
                    last_heard = time.monotonic()
                elif now - last_ping > self.heartbeat_s and now - last_heard > self.heartbeat_s:
                    self._send(Ping(id=self._next_id()))
                    last_ping = now
                continue
            message, rasters = event
            last_heard = now
            attempts = 0
            if isinstance(message, (Pong, Ack)):
                continue  # heartbeat and fetch/cancel acknowledgements: not job events
            if message.id != job.request_id:
                self._inbox.setdefault(message.id, deque()).append(event)
                continue
            if isinstance(message, Rejected):
                if message.code == ErrorCode.NOT_FOUND.value:
                    raise JobFailed(message.code, message.message)
                continue  # e.g. a fetch answered while the job still runs
            yield event
            if message.TYPE in TERMINAL_TYPES:
                return

    def run(
        self,
        task: str,
        params: dict | None = None,
        rasters: Sequence[Raster] = (),
        model: str | None = None,
        on_event: Callable[[Message, list[Raster]], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> JobOutcome:
        """Submit and wait for the result; failures and cancels raise typed errors."""
        job = self.submit(task, params, rasters, model)
        seen: list[Message] = []
        for message, out in self.events(job, should_cancel):
            seen.append(message)
            if on_event is not None:
                on_event(message, out)
            if isinstance(message, Result):
                return JobOutcome(message, out, seen)
            if isinstance(message, Failed):
                raise JobFailed(message.code, message.message)
            if isinstance(message, Cancelled):
                raise JobCancelledError("cancelled", f"job {job.job_id} was cancelled")
        raise JobFailed(ErrorCode.INTERNAL.value, "the job ended without a result")

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing -----------------------------------------------------------------------

    def _next_id(self) -> str:
        return f"{self._prefix}-{next(self._ids)}"

    def _send(
        self, message: Message, rasters: Sequence[Raster] = (), timeout_s: float | None = None
    ) -> None:
        frames = codec.encode(message, rasters, self.key)
        if not self._transport.send(frames, self.timeout_s if timeout_s is None else timeout_s):
            raise DaemonUnavailable(ErrorCode.DAEMON_UNAVAILABLE.value, self._no_daemon_text())

    def _request(
        self, message: Message, rasters: Sequence[Raster] = (), timeout_s: float | None = None
    ) -> Event:
        timeout = self.timeout_s if timeout_s is None else timeout_s
        self._send(message, rasters, timeout)
        deadline = time.monotonic() + timeout
        while True:
            event = self._take(message.id)
            if event is not None:
                return event
            left = deadline - time.monotonic()
            if left <= 0:
                raise DaemonUnavailable(ErrorCode.DAEMON_UNAVAILABLE.value, self._no_daemon_text())
            event = self._receive(left)
            if event is not None:
                self._inbox.setdefault(event[0].id, deque()).append(event)

    def _take(self, request_id: str) -> Event | None:
        box = self._inbox.get(request_id)
        if not box:
            return None
        event = box.popleft()
        if not box:
            del self._inbox[request_id]
        return event

    def _receive(self, timeout_s: float) -> Event | None:
        frames = self._transport.recv(timeout_s)
        if frames is None:
            return None
        try:
            return codec.decode(frames, self.key)
        except ProtocolError as exc:
            raise ClientError(exc.code.value, f"the daemon sent a bad message: {exc}") from None

    def _reattach(self, job: Job, attempt: int) -> None:
        time.sleep(min(0.2 * 2**attempt, 2.0))  # back off: a restarting daemon needs a moment
        self._transport.reopen()
        self._inbox.clear()
        # The daemon routes the job's remaining events (or its kept result) to this socket.
        try:
            self._send(Fetch(id=job.request_id, job_id=job.job_id), timeout_s=self.heartbeat_s)
        except DaemonUnavailable:
            pass

    def _no_daemon_text(self) -> str:
        return (
            f"no sfumato daemon answers at {self.endpoint}: start one with `sfumato serve` "
            "(or set SFUMATO_ENDPOINT to where it listens)"
        )


def _expect(reply: Message, cls: type[M]) -> M:
    if isinstance(reply, cls):
        return reply
    raise _unexpected(reply)


def _unexpected(reply: Message) -> ClientError:
    if isinstance(reply, Rejected):
        return RequestRejected(reply.code, reply.message)
    return ClientError(ErrorCode.BAD_MESSAGE.value, f"unexpected reply {reply.TYPE.value}")

