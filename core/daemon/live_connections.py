"""Which connection last proved each client id's key.

ZeroMQ routes a reply by client id alone, and ids are named by the clients. Once a program's
connection closes, a program holding another allowed key could connect under the same id
(it would need to know it) and the daemon's next event for that id would reach it. So an id
may be sent to only while the connection its last accepted message came through is open:
the socket monitor reports each closed connection (by file descriptor) before ZeroMQ frees
the id, and the monitor is read before every send. A program that reconnects proves itself
with its next message (the client's heartbeat during a job), and fetches what it missed.
"""

from __future__ import annotations

from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message


class LiveConnections:
    def __init__(self, sock: zmq.Socket[Any]) -> None:
        self._socket = sock
        self._monitor: zmq.Socket[Any] | None = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self._fd: dict[bytes, int] = {}  # client id -> the connection it last proved on

    def proved(self, identity: bytes, frame: zmq.Frame) -> None:
        """`identity`'s key was checked on the message `frame` belongs to."""
        self._read_closed()  # older closes first: a new connection may reuse their numbers
        try:
            fd = int(frame.get(zmq.SRCFD))
        except zmq.ZMQError:
            fd = -1
        self._fd[identity] = fd

    def may_send(self, identity: bytes) -> bool:
        """Whether a message for `identity` would reach the connection that proved it."""
        self._read_closed()
        return identity in self._fd

    def forget(self, identity: bytes) -> None:
        self._fd.pop(identity, None)

    def close(self) -> None:
        if self._monitor is not None:
            self._socket.disable_monitor()
            self._monitor.close(linger=0)
            self._monitor = None

    def _read_closed(self) -> None:
        if self._monitor is None:
            return
        while True:
            try:
                event = recv_monitor_message(self._monitor, flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_DISCONNECTED:
                closed = int(event["value"])
                for identity in [i for i, fd in self._fd.items() if fd == closed and fd >= 0]:
                    del self._fd[identity]
