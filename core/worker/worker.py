"""The worker: runs one job at a time on the GPU (or CPU). A plain class with no knowledge of
sockets or processes, so a supervisor process, a test, or a Ray Serve replica can host it."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import traceback
from collections.abc import Callable
from typing import Any

from sfumato.bridge.protocol import Cancelled as CancelledMessage
from sfumato.bridge.protocol import ErrorCode, Failed, Message, Progress, Result, Submit
from sfumato.bridge.protocol import Preview as PreviewMessage
from sfumato.bridge.raster import Raster
from sfumato.core.config import Settings
from sfumato.core.errors import JobCancelled, SfumatoError
from sfumato.core.models.provider import WorkerModels
from sfumato.core.task_api import CancelFlag, CancelToken, Limits, TaskContext, TaskOutput
from sfumato.core.tasks import task_module, task_spec

log = logging.getLogger("sfumato.worker")

EventSink = Callable[[Message, list[Raster]], None]


def pick_device(preference: str = "auto") -> str:
    import torch

    if preference != "auto":
        return preference
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


class Worker:
    def __init__(self, settings: Settings) -> None:
        from sfumato.core.models.torchvision_guard import guard_torchvision

        guard_torchvision()  # before any model library looks for torchvision
        self.settings = settings
        self.device = pick_device(settings.device)
        self.models = WorkerModels(settings, self.device)
        self.limits = Limits(max_pixels=settings.max_pixels)
        self.jobs_done = 0
        self._frozen_with: frozenset[str] | None = None  # loaded models at the last gc.freeze

    def load(self, model_id: str, task: str) -> None:
        """Warm the cache for `model_id` as `task` would use it."""
        spec = task_spec(task)
        entry = self.models.entry(model_id, spec.model_kinds, spec.default_model)
        if entry.kind in ("upscaler", "lama", "mat"):  # spandrel models, not pipelines
            self.models.load(entry)
        else:  # remove refines its fill with the model's inpaint pipeline
            self.models.load_pipeline(entry, "inpaint" if task == "remove" else task)

    def run(
        self, job: Submit, rasters: list[Raster], emit: EventSink, cancelled: CancelFlag
    ) -> None:
        """Run one job, emitting progress/preview events and exactly one terminal event."""
        job_id = job.id

        def progress(step: int, total: int, stage: str) -> None:
            emit(Progress(id=job_id, job_id=job_id, step=step, total=total, stage=stage), [])

        def preview(raster: Raster, step: int) -> None:
            emit(PreviewMessage(id=job_id, job_id=job_id, step=step), [raster])

        try:
            module = task_module(job.task)

            def attempt() -> TaskOutput:
                ctx = TaskContext(
                    params=dict(job.params),
                    rasters=rasters,
                    model_id=job.model,
                    models=self.models,
                    device=self.device,
                    limits=self.limits,
                    progress=progress,
                    preview=preview,
                    cancel=CancelToken(cancelled),
                )
                return module.run(ctx)

            output = self._run_with_memory_fallback(attempt, progress)
        except JobCancelled:
            emit(CancelledMessage(id=job_id, job_id=job_id), [])
            return
        except SfumatoError as exc:
            emit(Failed(id=job_id, job_id=job_id, code=exc.code.value, message=exc.message), [])
            return
        except Exception as exc:  # a bug or a library error must not kill the worker
            emit(Failed(id=job_id, job_id=job_id, **_describe_failure(exc, self.device)), [])
            return
        finally:
            # memory is released by the caller after the terminal event has gone out
            # (release_memory), so collecting never delays the artist's result
            self.jobs_done += 1
        try:
            emit(Result(id=job_id, job_id=job_id, info=output.info), output.rasters)
        except (TypeError, ValueError) as exc:  # info the codec cannot carry: a task bug
            emit(Failed(id=job_id, job_id=job_id, **_describe_failure(exc, self.device)), [])

    def _run_with_memory_fallback(
        self, attempt: Callable[[], TaskOutput], progress: Callable[[int, int, str], None]
    ) -> TaskOutput:
        """Run once; out of memory, drop every loaded model, load leaner and run once more.
        Whatever runs out the second time ends as resource_exhausted (see _describe_failure)."""
        try:
            return attempt()
        except Exception as exc:
            if not _is_out_of_memory(exc):
                raise
            log.warning("out of memory (%s): evicting models and retrying leaner", exc)
        # out of the except block: the failed attempt's frames (and arrays) are freed now
        self.models.degrade()
        self.release_memory()
        progress(0, 0, "retrying with less memory")
        return attempt()

    def release_memory(self) -> None:
        """Back to the pre-job footprint once a job's events are all sent (its result too).

        What survives a job (the libraries, the loaded models) is frozen out of later
        collections: a full pass over diffusers' and torch's objects costs about 0.2 s, which
        every job would pay otherwise. Once a model is loaded or dropped, one full pass runs
        again, so an evicted model's reference cycles are still collected."""
        loaded = frozenset(self.models.cache.keys())
        if loaded != self._frozen_with:
            gc.unfreeze()
            self._frozen_with = loaded
        _release_memory(self.device)
        gc.freeze()

    def health(self) -> dict[str, Any]:
        return {"device": self.device, "pid": os.getpid(), "jobs": self.jobs_done,
                "memory_bytes": _memory_in_use(self.device), **self.models.describe()}


RESOURCE_HINT = (
    "the {device} ran out of memory, even after unloading every other model and retrying "
    "leaner: try a smaller selection or image, a smaller tile (--tile), a smaller model, or "
    "close other programs using the {device}; an admin can raise worker_memory_bytes or "
    "model_cache_bytes under [daemon] in SFUMATO_HOME/config.toml"
)


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, SfumatoError):  # a task that already shrank its tiles to the minimum
        return exc.code is ErrorCode.RESOURCE_EXHAUSTED
    from sfumato.core.device.memory import is_out_of_memory

    return is_out_of_memory(exc)


def _describe_failure(exc: Exception, device: str = "device") -> dict[str, str]:
    text = str(exc)
    if _is_out_of_memory(exc) or type(exc).__name__ == "OutOfMemoryError":
        return {
            "code": ErrorCode.RESOURCE_EXHAUSTED.value,
            "message": RESOURCE_HINT.format(device="GPU" if device == "cuda" else "memory"),
        }
    log.error("job failed unexpectedly:\n%s", traceback.format_exc())
    return {
        "code": ErrorCode.INTERNAL.value,
        "message": f"the job failed inside the daemon ({type(exc).__name__}: {text[:300]}); "
        "the daemon log in SFUMATO_HOME/logs has details",
    }


def _release_memory(device: str) -> None:
    """Give a finished job's memory back, so the worker returns to its pre-job footprint:
    collect cycles (tracebacks hold frames with arrays), hand freed heap pages back to the
    system (glibc keeps them otherwise) and empty torch's CUDA cache."""
    gc.collect()
    _trim_heap()
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()


def _memory_in_use(device: str) -> int:
    """What a job leaves behind shows here: tensors allocated on a GPU, else this process's
    own resident RAM (RssAnon: not the libraries' pages, nor the memory files pixels travel
    in, which belong to the pool that reuses them)."""
    if device == "cuda":
        import torch

        return int(torch.cuda.memory_allocated())
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0
    return 0


def _trim_heap() -> None:
    name = ctypes.util.find_library("c")
    if name is None:
        return
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None)  # glibc only
    if trim is not None:
        trim(0)
