"""The client's socket: a ZeroMQ DEALER. The only bridge module that imports zmq.

With CURVE (every TCP endpoint), nothing goes out until the handshake has proved that the
peer holds the daemon's secret key (ZMQ_IMMEDIATE: messages queue only to completed
connections), and a socket monitor tells a peer that failed that proof (another program on
the port) from a daemon that refused our key and from no daemon at all."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
import zmq.utils.monitor

from .endpoints import (
    CLIENT_SECRET_FILE,
    LOCAL_SECRET_FILE,
    NO_CURVE,
    SERVER_PUBLIC_FILE,
    CurveKeys,
    HandshakeFailed,
    KeyFileError,
    default_home,
    keys_dir,
    needs_curve,
)
from .protocol import ErrorCode
from .raster import Buffer

LINGER_MS = 100  # unsent messages (a last cancel) get this long; a dead daemon never blocks
# a peer that accepts the connection but never completes the handshake is not the daemon
# (whose I/O thread answers within milliseconds, busy or not)
HANDSHAKE_MS = 5000
_WATCHED = (zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED
            | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            | zmq.EVENT_HANDSHAKE_FAILED_AUTH)


def load_client_keys(folder: str | Path) -> CurveKeys:
    """Read a folder made by `sfumato keys client NAME`: the daemon's public key and this
    client's key pair."""
    folder = Path(folder).expanduser()
    try:
        server_public, _ = zmq.auth.load_certificate(folder / SERVER_PUBLIC_FILE)
        client_public, client_secret = zmq.auth.load_certificate(folder / CLIENT_SECRET_FILE)
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"cannot read the CURVE keys in {folder}: {exc}; make them on the "
                           "daemon's machine with `sfumato keys client NAME`") from None
    if client_secret is None:
        raise KeyFileError(f"{folder / CLIENT_SECRET_FILE} holds no secret key")
    return CurveKeys(server_public, client_public, client_secret)


def local_keys(home: Path) -> CurveKeys:
    """This user's keys in `home` (made by the daemon on its first start): the daemon's public
    key and the key pair this user's programs share."""
    folder = keys_dir(home)
    try:
        if not all((folder / name).is_file() for name in (SERVER_PUBLIC_FILE, LOCAL_SECRET_FILE)):
            raise FileNotFoundError
        server_public, _ = zmq.auth.load_certificate(folder / SERVER_PUBLIC_FILE)
        client_public, client_secret = zmq.auth.load_certificate(folder / LOCAL_SECRET_FILE)
    except FileNotFoundError:
        raise KeyFileError(f"no sfumato daemon answers: none has run for SFUMATO_HOME {home} "
                           "yet (its keys, made on its first start, are not there); start one "
                           "with `sfumato serve`, or set SFUMATO_HOME to the daemon's",
                           ErrorCode.DAEMON_UNAVAILABLE) from None
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"cannot read this user's sfumato keys in {folder} ({exc}): they "
                           "are made when the daemon first starts, so run `sfumato serve` (or "
                           "any sfumato command) once; if the daemon runs with another "
                           "SFUMATO_HOME, set SFUMATO_HOME to it") from None
    if client_secret is None:
        raise KeyFileError(f"{folder / LOCAL_SECRET_FILE} holds no secret key")
    return CurveKeys(server_public, client_public, client_secret)


def curve_from_env(endpoint: str = "tcp://") -> CurveKeys | None:
    """The keys for `endpoint`: the folder named by SFUMATO_CURVE (a client on another
    machine), else this user's own keys in SFUMATO_HOME; None for ipc:// and inproc://, or
    with SFUMATO_CURVE=off (a daemon with curve_on_loopback = false)."""
    folder = os.environ.get("SFUMATO_CURVE")
    if folder == NO_CURVE or not needs_curve(endpoint):
        return None
    return load_client_keys(folder) if folder else local_keys(default_home())


class DealerTransport:
    """One DEALER socket to the daemon. `reopen()` drops queued messages and reconnects under
    a new suffix of the same routing id (its family), so the daemon still knows whose jobs
    are whose."""

    def __init__(
        self,
        endpoint: str,
        context: zmq.Context[Any] | None = None,
        *,
        routing_id: bytes | None = None,
        curve: CurveKeys | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.routing_id = routing_id
        self.curve = curve
        self._context = context or zmq.Context.instance()
        self._socket: zmq.Socket[Any] | None = None
        self._monitor: zmq.Socket[Any] | None = None
        self._failure: HandshakeFailed | None = None
        self._pending_since: float | None = None  # a TCP connection, handshake not done
        self.reopen()

    def reopen(self) -> None:
        self.close()
        self._failure = None
        self._pending_since = None
        sock = self._context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, LINGER_MS)
        # queue only to a live connection, so "no daemon" shows up as a send that cannot go
        sock.setsockopt(zmq.IMMEDIATE, 1)
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        if self.routing_id is not None:
            # this connection's own id in the client's family (ID/suffix): a new connection
            # never has to wait for the daemon to let go of the last one's id
            sock.setsockopt(zmq.ROUTING_ID, self.routing_id + b"/" + os.urandom(4).hex().encode())
        if self.curve is not None:
            sock.setsockopt(zmq.CURVE_SERVERKEY, self.curve.server_public)
            sock.setsockopt(zmq.CURVE_PUBLICKEY, self.curve.client_public)
            sock.setsockopt(zmq.CURVE_SECRETKEY, self.curve.client_secret)
            sock.setsockopt(zmq.HANDSHAKE_IVL, HANDSHAKE_MS)
            self._monitor = sock.get_monitor_socket(_WATCHED)
        sock.connect(self.endpoint)
        self._socket = sock

    def send(self, frames: Sequence[Buffer], timeout_s: float) -> bool:
        """Queue a frame set without copying pixel buffers; False when it cannot go out."""
        sock = self._require()
        if not self._writable(sock, timeout_s):
            return False
        try:
            sock.send_multipart(list(frames), copy=False, flags=zmq.NOBLOCK)
        except zmq.Again:  # the connection went between the poll and the send
            return False
        return True

    def recv(self, timeout_s: float) -> list[memoryview] | None:
        """The next frame set, or None after `timeout_s` with nothing to read. Never blocks
        longer: a multipart message is delivered whole, so after POLLIN all of it is here."""
        sock = self._require()
        if not sock.poll(int(timeout_s * 1000), zmq.POLLIN):
            return None
        try:
            parts = sock.recv_multipart(copy=False, flags=zmq.NOBLOCK)
        except zmq.Again:
            return None
        except BaseException:
            # Ctrl-C between two frames (the CLI then cancels and reads on): drop the rest of
            # this frame set, so the next read starts on a whole message, not in its middle
            while sock.getsockopt(zmq.RCVMORE):
                sock.recv(flags=zmq.NOBLOCK)
            raise
        return [part.buffer for part in parts]

    @property
    def linger_ms(self) -> int:
        return int(self._require().getsockopt(zmq.LINGER))

    def close(self) -> None:
        """Returns at once, whatever the daemon is doing: zmq closes in the background and
        gives up on unsent messages after LINGER_MS."""
        if self._monitor is not None and self._socket is not None:
            self._socket.disable_monitor()
            self._monitor.close(linger=0)
            self._monitor = None
        if self._socket is not None:
            self._socket.close(linger=LINGER_MS)
            self._socket = None

    def _writable(self, sock: zmq.Socket[Any], timeout_s: float) -> bool:
        """Wait until a message can go to a daemon that proved its key; raise HandshakeFailed
        once the peer on the port failed to prove it, or refused our key."""
        if self._monitor is None:
            return bool(sock.poll(int(timeout_s * 1000), zmq.POLLOUT))
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLOUT)
        poller.register(self._monitor, zmq.POLLIN)
        deadline = time.monotonic() + timeout_s
        while True:
            self._read_handshakes()
            if sock.poll(0, zmq.POLLOUT):
                return True
            if self._failure is not None:
                raise self._failure
            left = deadline - time.monotonic()
            if left <= 0 and self._pending_since is not None:
                # something accepted the connection: wait for the handshake's outcome rather
                # than call it "no daemon" (and start another on a port that is taken)
                left = self._pending_since + HANDSHAKE_MS / 1000 + 0.5 - time.monotonic()
            if left <= 0:
                return False
            poller.poll(max(1, int(left * 1000)))

    def _read_handshakes(self) -> None:
        """The last handshake's outcome, from the monitor (kept: a peer that failed once may
        never be retried, and a later send must still say why)."""
        monitor = self._monitor
        while monitor is not None and monitor.poll(0):
            event = zmq.utils.monitor.recv_monitor_message(monitor)["event"]
            if event == zmq.EVENT_CONNECTED:
                self._pending_since = time.monotonic()
                continue
            since, self._pending_since = self._pending_since, None
            if event == zmq.EVENT_DISCONNECTED:
                continue
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._failure = None
            elif event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                self._failure = HandshakeFailed("refused")
            elif since is not None and time.monotonic() - since >= HANDSHAKE_MS / 1000 - 0.5:
                self._failure = HandshakeFailed("silent")  # libzmq gave up waiting
            else:  # FAILED_NO_DETAIL (a wrong key) or _PROTOCOL (no CURVE at all)
                self._failure = HandshakeFailed("impostor")

    def _require(self) -> zmq.Socket[Any]:
        if self._socket is None:
            raise RuntimeError("transport is closed")
        return self._socket
