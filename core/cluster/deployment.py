"""The Ray Serve deployment: one replica per GPU (or a share of CPUs), each hosting the
plain `Worker` (load / run / health; no socket, no process of its own), multiplexed by model
id so Serve routes a job to a replica that already holds its model.

A job streams back: first the replica's name, then the worker's events as codec frames
with numpy pixels. A cancelled request (the front door's cancel) sets the worker's cancel
flag, which the task checks at its next step or tile; the stream ends once it has stopped.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ray import serve
from sfumato.bridge.protocol import TERMINAL_TYPES, Message, Progress, Submit
from sfumato.bridge.raster import Raster
from sfumato.core.cluster.wire import (
    REPLICA_EVENT,
    pack_message,
    pack_rasters,
    unpack_message,
    unpack_rasters,
)
from sfumato.core.config import Settings

log = logging.getLogger("sfumato.replica")

MODELS_PER_REPLICA = 3  # model ids a replica is routed for; its cache still holds by bytes


class SfumatoReplica:
    def __init__(self, settings: dict[str, Any]) -> None:
        from sfumato.core.worker.worker import Worker

        config = Settings(**{**settings, "home": Path(settings["home"])})
        _match_threads_to_cpus()
        self.worker = Worker(config)
        self.name = serve.get_replica_context().replica_id.unique_id
        self.last_job: dict[str, Any] = {}  # how the last job ended, for `health`
        self.idle_release_s = config.idle_release_s
        self.jobs_started = 0
        self.working = threading.Lock()  # a job or a memory release, one at a time

    @serve.multiplexed(max_num_models_per_replica=MODELS_PER_REPLICA)
    async def model_slot(self, model_key: str) -> str:
        # The worker loads (and evicts, by bytes) on first use inside its job; this slot is
        # what tells Serve's router that this replica holds the model.
        return model_key

    async def run(self, frames: list[bytes], pixels: list[Any]) -> AsyncIterator[Any]:
        await self.model_slot(serve.get_multiplexed_model_id())
        self.jobs_started += 1
        yield (REPLICA_EVENT, self.name, self.last_job)  # how its previous job ended
        job = unpack_message(frames)
        if not isinstance(job, Submit):
            raise TypeError(f"a replica runs submitted jobs, not {job.TYPE.value}")
        rasters = unpack_rasters(list(await asyncio.gather(*pixels)))  # refs to the store
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[list[bytes], list[Any]] | None] = asyncio.Queue()
        cancel = threading.Event()
        stopped_at = [0]

        def emit(message: Message, out: list[Raster]) -> None:
            if isinstance(message, Progress):
                stopped_at[0] = message.step
            packed = (pack_message(message), pack_rasters(out))
            loop.call_soon_threadsafe(events.put_nowait, packed)

        def work() -> None:
            try:
                with self.working:
                    self.worker.run(job, rasters, emit, cancel)
            finally:
                loop.call_soon_threadsafe(events.put_nowait, None)

        running = loop.run_in_executor(None, work)
        ended = "running"
        try:
            while (item := await events.get()) is not None:
                if unpack_message(item[0]).TYPE in TERMINAL_TYPES:
                    ended = unpack_message(item[0]).TYPE.value
                yield item
        finally:
            if not running.done():  # the request was cancelled (or the stream dropped)
                cancel.set()
                ended = "cancelled"
                await asyncio.shield(running)  # the worker stops within one step
            self.last_job = {"job_id": job.id, "ended": ended, "step": stopped_at[0]}
            # As the local worker does: memory goes back once no job followed for
            # idle_release_s, so a run of jobs keeps its warm buffers, and the request ends
            # with its last event (a replica still collecting would look busy to the router).
            loop.call_later(self.idle_release_s, self._release_if_idle, self.jobs_started)

    def _release_if_idle(self, jobs_then: int) -> None:
        if self.jobs_started == jobs_then:
            asyncio.get_running_loop().run_in_executor(None, self._release)

    def _release(self) -> None:
        with self.working:
            self.worker.release_memory()

    async def health(self) -> dict[str, Any]:
        return {**self.worker.health(), "replica": self.name, "last_job": self.last_job}


def _match_threads_to_cpus() -> None:
    """A CPU replica computes with the CPUs Ray gave it, not every core of the node: two
    replicas on one machine would otherwise fight over the same cores."""
    import ray
    import torch

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 0.0)
    if cpus >= 1 and not torch.cuda.is_available():
        torch.set_num_threads(int(cpus))

