"""The worker's own process, and the daemon-side handle that watches it.

A crash, a fatal CUDA error or a hard kill ends the child, not the daemon: the supervisor
notices the pipe closing, starts a fresh child, and the server retries or fails the job.
Between the processes travel the same codec frames as on the wire: no pickled messages;
large rasters go through memory files (worker_pixels), the pipe carries their references.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from multiprocessing.context import SpawnProcess
from pathlib import Path
from typing import Any

from sfumato.bridge import codec
from sfumato.bridge.protocol import TERMINAL_TYPES, Message, Ping, StatusReport, Submit
from sfumato.bridge.raster import Buffer, Raster
from sfumato.core.config import Settings
from sfumato.core.worker.pixel_link import link_pixels

log = logging.getLogger("sfumato.supervisor")

READY_ID = "worker-ready"
MAX_RESTART_DELAY_S = 60.0
PR_SET_PDEATHSIG = 1
HEALTH_ID = "worker-health"  # sent after every job, so `status` shows what is loaded now
LINK_NEWS_ID = "link-news"  # daemon -> idle worker: memory files let go of, nothing to run
HEARTBEAT_ID = "worker-heartbeat"  # worker -> daemon, from a thread: the process still runs
MAX_HEARTBEAT_S = 5.0


class WorkerGone(Exception):
    """The worker process ended (crash, kill, fatal device error)."""


def send_frames(conn: multiprocessing.connection.Connection, frames: list[Buffer]) -> None:
    conn.send_bytes(len(frames).to_bytes(4, "big"))
    for frame in frames:
        conn.send_bytes(frame)


def recv_frames(conn: multiprocessing.connection.Connection) -> list[bytes]:
    count = int.from_bytes(conn.recv_bytes(), "big")
    return [conn.recv_bytes() for _ in range(count)]


def worker_main(conn: multiprocessing.connection.Connection, cancel: Any, settings: dict) -> None:
    """Entry point of the child process."""
    from sfumato.core.logs import configure_logging
    from sfumato.core.worker.worker import Worker

    _die_with_parent()
    # Ctrl-C or a SIGTERM to the daemon's process group reaches the worker too: the daemon
    # decides when its worker stops (after its graceful stop), so ignore them here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    config = Settings(**{**settings, "home": Path(settings["home"])})
    configure_logging(config.home, "worker")
    worker = Worker(config)
    if config.worker_memory_bytes > 0:
        cap_memory(worker.device, config.worker_memory_bytes)

    link = link_pixels(config.shared_memory)
    sending = threading.Lock()  # the heartbeat thread and the job share the pipe

    def send(message: Message, rasters: list[Raster]) -> None:
        # a result through memory files; step previews (many, small) through the pipe
        pixels = link if not rasters or message.TYPE in TERMINAL_TYPES else None
        frames = codec.encode(message, rasters, pixels=pixels)
        with sending:
            send_frames(conn, frames)

    _start_heartbeat(conn, sending, config.worker_watchdog_s)

    def report_health(settled: bool) -> None:
        send(StatusReport(id=HEALTH_ID, device=worker.device,
                          worker={**worker.health(), "settled": settled}), [])

    def emit(message: Message, rasters: list[Raster]) -> None:
        if message.TYPE in TERMINAL_TYPES:
            report_health(False)  # `status` right after a result shows what is loaded now
        send(message, rasters)

    send(StatusReport(id=READY_ID, device=worker.device,
                      worker={**worker.health(), "settled": True}), [])
    unreleased = False  # a job's memory not yet given back
    while True:
        # Memory goes back once no job follows within idle_release_s: a run of jobs keeps
        # its warm buffers (and CUDA's cache), an idle worker returns to its footprint.
        if unreleased and not conn.poll(config.idle_release_s):
            if link is not None:
                link.idle()
            worker.release_memory()
            report_health(True)  # memory_bytes is now the worker's between-jobs footprint
            unreleased = False
        try:
            frames = recv_frames(conn)
        except (EOFError, OSError):
            return  # the daemon went away: nothing left to serve
        message, rasters = codec.decode(frames, pixels=link)
        if isinstance(message, Submit):
            worker.run(message, rasters, emit, cancel)
            del message, rasters, frames  # the request's pixels too
            unreleased = True
        elif link is not None and not unreleased:
            link.idle()  # news while idle: files the daemon just let go of go too


def _start_heartbeat(conn: multiprocessing.connection.Connection, sending: threading.Lock,
                     watchdog_s: float) -> None:
    """Tell the daemon, a few times per watchdog period, that this process still runs: a
    long model load or step is not a hang; a stopped or wedged process sends nothing."""
    if watchdog_s <= 0:
        return
    interval = min(MAX_HEARTBEAT_S, watchdog_s / 4)
    frames = codec.encode(Ping(id=HEARTBEAT_ID))

    def beat() -> None:
        while True:
            time.sleep(interval)
            try:
                with sending:
                    send_frames(conn, frames)
            except (OSError, ValueError):
                return  # the daemon went away

    threading.Thread(target=beat, name="sfumato-heartbeat", daemon=True).start()


def cap_memory(device: str, extra_bytes: int) -> None:
    """Let this process take at most `extra_bytes` more memory than it holds now (its
    libraries), so a job that needs more fails with an out-of-memory error the worker
    reports, instead of the machine swapping or the kernel's OOM killer picking a victim.
    On CPU: RLIMIT_DATA (private writable memory). On CUDA: torch's per-process fraction."""
    if device == "cuda":
        import torch

        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, extra_bytes / total))
        return
    import resource

    limit = _data_bytes() + extra_bytes
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    log.info("worker memory capped at %.0f MB of private data", limit / 1e6)


def _data_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    return 0


def _die_with_parent() -> None:
    """Linux: the kernel kills this worker when the daemon dies, however it dies (even
    SIGKILL), so no orphan keeps a GPU busy."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return  # not Linux: the pipe closing still ends an idle worker
    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid != os.getppid():
        os._exit(0)  # the daemon died before the line above took effect


class WorkerSupervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._ctx = multiprocessing.get_context("spawn")
        self.cancel_flag = self._ctx.Event()
        self.process: SpawnProcess | None = None
        self.conn: multiprocessing.connection.Connection | None = None
        self.ready = False
        self.device = "starting"
        self.health: dict[str, Any] = {}
        self.restarts = 0
        self.start_failures = 0  # workers in a row that died before reporting ready
        self._start_at: float | None = None
        self._heard_at = time.monotonic()  # the last frame from the worker, or the last job sent
        self._moved_at = self._heard_at  # the last event that was not a heartbeat, or job sent
        # pixels to and from the worker through memory files (not the pipe), as configured
        self.pixels = link_pixels(settings.shared_memory)

    def start(self) -> None:
        parent, child = self._ctx.Pipe(duplex=True)
        settings = {**dataclasses.asdict(self.settings), "home": str(self.settings.home)}
        self.process = self._ctx.Process(
            target=worker_main, args=(child, self.cancel_flag, settings), daemon=True,
            name="sfumato-worker",
        )
        self.process.start()
        child.close()
        self.conn = parent
        self.ready = False

    def restart(self) -> None:
        """Start a fresh worker: at once after a crash mid-job, later and later (up to a
        minute) while workers keep dying before they are ready, e.g. a broken install."""
        self.start_failures = 0 if self.ready else self.start_failures + 1
        self.stop()
        self.restarts += 1
        delay = min(2.0 ** self.start_failures, MAX_RESTART_DELAY_S) if self.start_failures else 0
        self._start_at = time.monotonic() + delay
        self.start_if_due()

    def start_if_due(self) -> None:
        if self.conn is None and self._start_at is not None and time.monotonic() >= self._start_at:
            self._start_at = None
            self.start()

    def fileno(self) -> int | None:
        """The pipe to poll; None while a restart waits out its delay."""
        return None if self.conn is None else self.conn.fileno()

    def send_job(self, job_id: str, task: str, model: str | None, params: dict,
                 rasters: list[Raster]) -> None:
        self.cancel_flag.clear()
        message = Submit(id=job_id, task=task, model=model, params=params)
        frames = codec.encode(message, rasters, pixels=self.pixels)
        self._heard_at = self._moved_at = time.monotonic()
        try:
            send_frames(self._conn(), frames)
        except (BrokenPipeError, OSError) as exc:
            raise WorkerGone(str(exc)) from None

    def capacity(self) -> int:
        return 1 if self.ready else 0  # one process, one job at a time

    def cancel(self, job_id: str) -> None:
        self.cancel_flag.set()  # the worker stops at the next tile or step

    def cancel_requested(self, job_id: str) -> bool:
        return self.cancel_flag.is_set()  # cleared by send_job: it is the running job's

    def pass_on_releases(self) -> None:
        """Tell an idle worker which of its memory files the daemon has let go of (a result
        its client has read), so it can free them now rather than with the next job."""
        if self.pixels is None or not self.ready or not self.pixels.has_news():
            return
        try:
            send_frames(self._conn(), codec.encode(Ping(id=LINK_NEWS_ID), pixels=self.pixels))
        except (BrokenPipeError, OSError, WorkerGone):
            pass  # a dead worker is noticed (and restarted) by the next read

    def read(self) -> tuple[Message, list[Raster]]:
        """One event from the worker; raises WorkerGone when it died."""
        try:
            frames = recv_frames(self._conn())
        except (EOFError, OSError) as exc:
            raise WorkerGone(f"worker exited ({self.exit_description()})") from exc
        self._heard_at = time.monotonic()
        message, rasters = codec.decode(frames, pixels=self.pixels)
        if message.id != HEARTBEAT_ID:
            self._moved_at = self._heard_at
        if isinstance(message, StatusReport) and message.id in (READY_ID, HEALTH_ID):
            self.ready = True
            self.device = message.device
            self.health = message.worker
            if message.worker.get("settled") and self.pixels is not None:
                self.pixels.idle()  # the worker idles: so do the pixel files for it
        return message, rasters

    def silent_for(self) -> float:
        """Seconds since the worker last sent anything (or was last given a job)."""
        return time.monotonic() - self._heard_at

    def stalled_for(self) -> float:
        """Seconds since the worker last sent an event (progress, preview, result...)."""
        return time.monotonic() - self._moved_at

    def kill(self) -> None:
        """End a hung worker at once (SIGKILL works on a stopped process too)."""
        if self.process is not None and self.process.is_alive():
            self.process.kill()

    def has_data(self) -> bool:
        return self.conn is not None and self.conn.poll(0)

    def exit_description(self) -> str:
        if self.process is None:
            return "not started"
        self.process.join(timeout=1.0)
        code = self.process.exitcode
        return "still running" if code is None else f"exit code {code}"

    def stop(self) -> None:
        self.ready = False
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.process is not None:
            # an idle worker exits by itself once its pipe closes; a busy one is killed
            # (it holds nothing worth saving, and ignores SIGTERM)
            self.process.join(timeout=1.0)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(timeout=5.0)
            self.process = None
        if self.pixels is not None:
            self.pixels.peer_restarted()  # a stopped worker holds no views of ours

    def _conn(self) -> multiprocessing.connection.Connection:
        if self.conn is None:
            raise WorkerGone("worker not started")
        return self.conn
