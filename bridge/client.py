"""Talking to the daemon: requests with timeouts, job event streams with heartbeats, and
reconnect-and-fetch so that a result survives a dropped connection.

Standard library + the transport module only: this runs inside GIMP's and Krita's Python.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from . import codec
from .codec import ProtocolError
from .endpoints import (
    CurveKeys,
    HandshakeFailed,
    KeyFileError,
    default_home,
    key_from_env,
    resolve_endpoint,
)
from .errors import SfumatoError
from .local_ipc import reachable_door
from .private_ipc import check_private_ipc
from .protocol import (
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
from .raster import Buffer, Layout, Raster
from .shared_pixels import ClientPixels, client_pixels


class DaemonConnection(Protocol):
    """What the client needs of a socket to the daemon (bridge/transport.DealerTransport)."""

    def send(self, frames: Sequence[Buffer], timeout_s: float) -> bool: ...
    def recv(self, timeout_s: float) -> list[memoryview] | None: ...
    def reopen(self) -> None: ...
    def close(self) -> None: ...


def _dealer(endpoint: str, routing_id: bytes, curve: CurveKeys | None) -> DaemonConnection:
    """The socket (with `curve`, else the keys SFUMATO_CURVE names, else this user's own in
    SFUMATO_HOME/keys), imported only now: without pyzmq the rest of the bridge still loads,
    so a plug-in can say what is missing instead of failing to load at all."""
    try:
        from .transport import DealerTransport, curve_from_env
    except ImportError as exc:
        raise ClientError(ErrorCode.MISSING_DEPENDENCY,
                          f"this Python cannot import pyzmq ({exc}); install pyzmq for the "
                          "Python your editor runs (`sfumato plugins install gimp` or `krita` "
                          "says how)") from None
    try:
        keys = curve if curve is not None else curve_from_env(endpoint)
    except KeyFileError as exc:
        if exc.code is ErrorCode.DAEMON_UNAVAILABLE:  # no daemon ever ran in this home
            return _Unreachable(DaemonUnavailable(exc.code, exc.message))
        return _Unreachable(ClientError(exc.code, exc.message))
    try:  # an ipc socket another user could have put there gets no pixels
        check_private_ipc(endpoint)
    except SfumatoError as exc:
        raise ClientError(exc.code, exc.message) from None
    # the same daemon's door for this user's programs: no encryption where none can listen
    door = reachable_door(endpoint, keys.server_public) if keys is not None else None
    if door is not None:
        return DealerTransport(door, routing_id=routing_id)
    return DealerTransport(endpoint, routing_id=routing_id, curve=keys)


class _Unreachable:
    """A connection that cannot be made (no keys to check a daemon against): each send says
    why, as a send to an absent daemon would, so callers handle it where they handle that."""

    def __init__(self, error: ClientError) -> None:
        self.error = error

    def send(self, frames: Sequence[Buffer], timeout_s: float) -> bool:
        raise self.error

    def recv(self, timeout_s: float) -> list[memoryview] | None:
        return None

    def reopen(self) -> None:
        pass

    def close(self) -> None:
        pass


class ClientError(SfumatoError):
    """Base of everything the client raises; `code` is an ErrorCode (a wire code this
    version does not know becomes INTERNAL)."""


class DaemonUnavailable(ClientError):
    pass


class NotTheDaemon(ClientError):
    """Something holds the daemon's port but could not prove it holds the daemon's key (or
    the daemon refused this client's key): nothing was sent to it."""


class DaemonSilent(DaemonUnavailable):
    """Something accepted the connection but never completed the handshake: a stopped
    daemon, or a program that is not one. Nothing was sent to it; not worth starting another
    daemon on a port that is taken."""


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
MAX_CLIENT_ID = 255 - 9  # ZeroMQ's routing id limit, less each connection's "/" + 8 hex
M = TypeVar("M", bound=Message)


class Client:
    """One connection to the daemon. Not thread-safe: use one per thread.

    `client_id` names this client to the daemon (its jobs and kept results are its own, under
    the key it proved: no other client can cancel or fetch them). Each connection adds its
    own suffix (transport.py), so a reconnection never waits for the daemon to let go of the
    last one; the jobs stay this id's. Pass the same id again after a restart to be told
    which results were missed (`missed()`). Make a persistent one random (e.g. uuid4, kept in
    the plug-in's settings), not a guessable name.
    An id of the form FAMILY/UNIQUE shares its jobs with the ids of the same FAMILY (the
    command line's processes of one user: `sfumato cancel` stops another's job).
    `name` and this process's id make the label logs and `sfumato status` show.
    `curve` holds the keys for a daemon on another machine (default: $SFUMATO_CURVE).
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        timeout_s: float = 10.0,
        heartbeat_s: float = 2.0,
        reconnects: int = 3,
        key: bytes | None = None,
        name: str | None = None,
        client_id: str | None = None,
        curve: CurveKeys | None = None,
        connect: Callable[[str, bytes], DaemonConnection] | None = None,
    ) -> None:
        """`connect(endpoint, routing_id)` makes the socket; by default a ZeroMQ DEALER (an
        in-process twin in tests, tests/support/in_process.py)."""
        self.endpoint = resolve_endpoint(endpoint)
        self.timeout_s = timeout_s
        self.heartbeat_s = heartbeat_s
        self.reconnects = reconnects
        self.key = key if key is not None else key_from_env()
        self.name = name or _program_name()
        self.label = f"{self.name}[{os.getpid()}]"
        self.client_id = client_id or f"c-{uuid.uuid4().hex}"
        routing_id = self.client_id.encode()
        if not 0 < len(routing_id) <= MAX_CLIENT_ID or routing_id[0] == 0:
            raise ClientError(ErrorCode.BAD_PARAMS, f"client_id must be 1 to {MAX_CLIENT_ID} "
                              "bytes and not start with a NUL")
        self._transport = (connect(self.endpoint, routing_id) if connect is not None
                           else _dealer(self.endpoint, routing_id, curve))
        self._ids = itertools.count(1)
        self._prefix = uuid.uuid4().hex[:8]
        self._inbox: dict[str, deque[Event]] = {}
        # pixels through shared memory when the daemon is on this machine (else frames)
        self._pixels: ClientPixels | None = client_pixels(self.endpoint)
        self._probing = False

    # --- simple requests ----------------------------------------------------------------

    def hello(self) -> Welcome:
        reply, _ = self._request(Hello(id=self._next_id(), client=self.label))
        return _expect(reply, Welcome)

    def missed(self) -> list[str]:
        """Job ids whose results the daemon kept for this client id but never delivered (the
        connection was gone when they finished); `attach` each to get it."""
        return list(self.hello().missed)

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
        params: dict[str, Any] | None = None,
        rasters: Sequence[Raster] = (),
        model: str | None = None,
    ) -> Job:
        request = Submit(id=self._next_id(), task=task, model=model, params=dict(params or {}),
                         client=self.label)
        reply, _ = self._request(request, rasters)
        if isinstance(reply, Accepted):
            return Job(job_id=reply.job_id, request_id=request.id, position=reply.position)
        raise _unexpected(reply)

    def attach(self, job_id: str) -> Job:
        """Follow a job this client id submitted earlier, e.g. before its connection dropped
        or its program restarted: its remaining events, or its kept result, come here."""
        request = Fetch(id=self._next_id(), job_id=job_id)
        self._send(request)
        return Job(job_id=job_id, request_id=request.id, position=0)

    # --- job events ---------------------------------------------------------------------

    def events(self, job: Job, should_cancel: Callable[[], bool] | None = None) -> Iterator[Event]:
        """Yield the job's events up to and including its terminal one.

        Sends a heartbeat fetch whenever the daemon has been quiet for `heartbeat_s`; when it
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
                    # a fetch, not a ping: it proves this connection to the daemon and brings
                    # the result if it finished while a reconnection hid it
                    self._send(Fetch(id=job.request_id, job_id=job.job_id))
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
                if message.code in (ErrorCode.NOT_FOUND.value, ErrorCode.FORBIDDEN.value):
                    raise JobFailed(message.code, message.message)
                continue  # e.g. a fetch answered while the job still runs
            yield event
            if message.TYPE in TERMINAL_TYPES:
                return

    def run(
        self,
        task: str,
        params: dict[str, Any] | None = None,
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

    def goodbye(self) -> None:
        """Tell the daemon this client leaves on purpose: its queued and running jobs are
        cancelled. Best effort: a daemon that is gone or not reading is not waited for."""
        try:
            self._send(Goodbye(id=self._next_id()), timeout_s=0.5)
        except DaemonUnavailable:
            pass

    def close(self) -> None:
        if self._pixels is not None:
            self._pixels.close()
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
        carrier = self._carrier(rasters)
        if carrier is not None:
            carrier.reuse = not isinstance(message, Submit)  # a job reads its input later
        frames = codec.encode(message, rasters, self.key, carrier)
        try:
            sent = self._transport.send(frames, self.timeout_s if timeout_s is None
                                        else timeout_s)
        except HandshakeFailed as exc:
            if exc.why == "silent":
                raise DaemonSilent(ErrorCode.DAEMON_UNAVAILABLE, self._handshake_text(exc)) \
                    from None
            raise NotTheDaemon(ErrorCode.AUTH_FAILED, self._handshake_text(exc)) from None
        if not sent:
            raise DaemonUnavailable(ErrorCode.DAEMON_UNAVAILABLE.value, self._no_daemon_text())

    def _request(
        self, message: Message, rasters: Sequence[Raster] = (), timeout_s: float | None = None
    ) -> Event:
        timeout = self.timeout_s if timeout_s is None else timeout_s
        replied = False
        try:
            self._send(message, rasters, timeout)
            deadline = time.monotonic() + timeout
            while True:
                event = self._take(message.id)
                if event is not None:
                    replied = True
                    return event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DaemonUnavailable(ErrorCode.DAEMON_UNAVAILABLE.value,
                                            self._no_daemon_text())
                event = self._receive(left)
                if event is not None:
                    self._inbox.setdefault(event[0].id, deque()).append(event)
        finally:
            if self._pixels is not None and rasters:
                # after a reply the daemon has read the pixels, unless a job will read them
                self._pixels.finish_sent(reused=replied and not isinstance(message, Submit))

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
            return codec.decode(frames, self.key, self._pixels)
        except ProtocolError as exc:
            if exc.code is ErrorCode.AUTH_FAILED:
                raise ClientError(exc.code, "the daemon signs its messages with another "
                                  "key: set SFUMATO_KEY to the daemon's key") from None
            raise ClientError(exc.code, f"the daemon sent a bad message: {exc}") from None

    def _reattach(self, job: Job, attempt: int) -> None:
        time.sleep(min(0.2 * 2**attempt, 2.0))  # back off: a restarting daemon needs a moment
        self._transport.reopen()
        self._inbox.clear()
        # The daemon routes the job's remaining events (or its kept result) to this socket.
        try:
            self._send(Fetch(id=job.request_id, job_id=job.job_id), timeout_s=self.heartbeat_s)
        except DaemonUnavailable:
            pass

    def _carrier(self, rasters: Sequence[Raster]) -> ClientPixels | None:
        """The shared-memory carrier once a round trip through it has worked with this daemon;
        the first message with pixels probes, and a failed probe means frames from then on."""
        pixels = self._pixels
        if pixels is None:
            return None
        if not pixels.confirmed and not self._probing and rasters:
            self._probe_shared_memory(pixels)
        return self._pixels if self._pixels is not None and (
            self._pixels.confirmed or self._probing) else None

    def _probe_shared_memory(self, pixels: ClientPixels) -> None:
        side = 128  # exactly MIN_BYTES of RGBA8, so both directions use shared memory
        probe = Raster(side, side, Layout.RGBA8, uuid.uuid4().bytes * (side * side * 4 // 16))
        self._probing = True
        try:
            echoed = self.ping([probe])
            works = len(echoed) == 1 and bytes(echoed[0].data) == bytes(probe.data)
        except (NotTheDaemon, DaemonSilent):
            raise  # not worth a second try with frames: say why now
        except ClientError:
            works = False  # e.g. another machine behind a tunnel, or an older daemon
        finally:
            self._probing = False
        if works:
            pixels.confirmed = True
        else:
            pixels.close()
            self._pixels = None

    @property
    def shares_memory(self) -> bool:
        """Whether pixels go through shared memory (known after the first raster sent)."""
        return self._pixels is not None and self._pixels.confirmed

    def _handshake_text(self, failure: HandshakeFailed) -> str:
        port = self.endpoint.rsplit(":", 1)[-1]
        if failure.why == "silent":
            return (f"no sfumato daemon answers at {self.endpoint}: something accepted the "
                    "connection but did not complete the handshake, so nothing was sent to "
                    "it. Either a stopped or stuck sfumato daemon (restart it: `sfumato serve`)"
                    f" or another program holds port {port}: stop it or set SFUMATO_ENDPOINT")
        if failure.why == "refused":
            return (f"the daemon at {self.endpoint} does not know this client's key: on its "
                    "machine, make a key folder with `sfumato keys client NAME` and set "
                    "SFUMATO_CURVE to it here (this user's own programs need no folder: keep "
                    "SFUMATO_HOME the daemon's)")
        return (f"another program holds port {port} ({self.endpoint}) and could not prove it "
                f"is your sfumato daemon (its key is in {default_home() / 'keys'}); nothing "
                "was sent to it. Stop that program or set SFUMATO_ENDPOINT to where your "
                "daemon listens (a daemon started with another SFUMATO_HOME has other keys: "
                "use the same SFUMATO_HOME)")

    def _no_daemon_text(self) -> str:
        return (
            f"no sfumato daemon answers at {self.endpoint}: start one with `sfumato serve` "
            "(or set SFUMATO_ENDPOINT to where it listens)"
        )


def _program_name() -> str:
    """This program's name, e.g. "sfumato_gimp" for a plug-in run as sfumato_gimp.py."""
    argv = getattr(sys, "argv", None) or [""]
    return os.path.splitext(os.path.basename(argv[0] or ""))[0] or "python"


def _expect(reply: Message, cls: type[M]) -> M:
    if isinstance(reply, cls):
        return reply
    raise _unexpected(reply)


def _unexpected(reply: Message) -> ClientError:
    if isinstance(reply, Rejected):
        return RequestRejected(reply.code, reply.message)
    return ClientError(ErrorCode.BAD_MESSAGE, f"unexpected reply {reply.TYPE.value}")

