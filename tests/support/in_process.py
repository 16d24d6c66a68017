"""An in-process twin of the daemon: the real `Daemon` serving from a thread of the test
process on an `inproc://` ZeroMQ socket, with the real client connected to it. Client <->
server logic (hello, ping, status, admission, the queue, cancel, ownership) is then testable
in the unit tier, without a daemon process or TCP. The worker is the one part left out: an
idle stand-in that never becomes ready, so jobs stay queued (tests that run jobs use the real
daemon process, tests/support/daemon_process.py)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import zmq
from sfumato.bridge.client import Client
from sfumato.bridge.transport import DealerTransport
from sfumato.core.config import Settings
from sfumato.core.daemon.server import Daemon


class IdleWorker:
    """Stands in for the worker supervisor: no process, never ready, nothing to read."""

    ready = False
    restarts = 0
    start_failures = 0
    device = "cpu"

    def __init__(self) -> None:
        self.cancel_flag = threading.Event()

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def start_if_due(self) -> None: ...
    def pass_on_releases(self) -> None: ...

    def fileno(self) -> int | None:
        return None

    def has_data(self) -> bool:
        return False

    def capacity(self) -> int:
        return 0  # never ready: jobs stay queued

    @property
    def health(self) -> dict[str, Any]:
        return {}

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the in-process twin has no worker: {name} was asked of it")


class InProcessDaemon:
    def __init__(self, daemon: Daemon, context: zmq.Context[Any]) -> None:
        self.daemon, self.context = daemon, context
        self.endpoint = daemon.endpoint

    def client(self, **options: Any) -> Client:
        """The real client, its DEALER on this process's inproc socket."""
        def connect(endpoint: str, routing_id: bytes) -> DealerTransport:
            return DealerTransport(endpoint, self.context, routing_id=routing_id)

        return Client(self.endpoint, connect=connect, **options)


@contextmanager
def in_process_daemon(home: Path, **settings: Any) -> Iterator[InProcessDaemon]:
    context: zmq.Context[Any] = zmq.Context()
    endpoint = f"inproc://sfumato-{uuid.uuid4().hex[:8]}"
    daemon = Daemon(Settings(home=home, endpoint=endpoint, shared_memory=False, **settings),
                    worker=IdleWorker())  # type: ignore[arg-type]
    daemon.bind(context)
    thread = threading.Thread(target=daemon.serve, name="sfumato-twin", daemon=True)
    thread.start()
    try:
        yield InProcessDaemon(daemon, context)
    finally:
        daemon.stop()
        daemon.stop()  # the second call leaves the loop at once
        thread.join(timeout=10)
        context.term()
