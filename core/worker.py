"""The worker: runs one job at a time on the GPU (or CPU). A plain class with no knowledge of
sockets or processes, so a supervisor process, a test, or a Ray Serve replica can host it."""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Callable
from typing import Any

from sfumato.bridge.protocol import Cancelled as CancelledMessage
from sfumato.bridge.protocol import ErrorCode, Failed, Message, Progress, Result, Submit
from sfumato.bridge.protocol import Preview as PreviewMessage
from sfumato.bridge.raster import Raster

from .config import Settings
from .errors import JobCancelled, SfumatoError
from .models.provider import WorkerModels
from .task_api import CancelFlag, CancelToken, Limits, TaskContext
from .tasks import task_module, task_spec

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
        from .models.torchvision_guard import guard_torchvision

        guard_torchvision()  # before any model library looks for torchvision
        self.settings = settings
        self.device = pick_device(settings.device)
        self.models = WorkerModels(settings, self.device)
        self.limits = Limits(max_pixels=settings.max_pixels)

    def load(self, model_id: str, task: str) -> None:
        """Warm the cache for `model_id` as `task` would use it."""
        spec = task_spec(task)
        entry = self.models.entry(model_id, spec.model_kinds, spec.default_model)
        if entry.kind == "upscaler":
            self.models.load(entry)
        else:
            self.models.load_pipeline(entry, task)

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
            output = module.run(ctx)
        except JobCancelled:
            emit(CancelledMessage(id=job_id, job_id=job_id), [])
            return
        except SfumatoError as exc:
            emit(Failed(id=job_id, job_id=job_id, code=exc.code.value, message=exc.message), [])
            return
        except Exception as exc:  # a bug or a library error must not kill the worker
            emit(Failed(id=job_id, job_id=job_id, **_describe_failure(exc)), [])
            return
        finally:
            _release_memory(self.device)
        try:
            emit(Result(id=job_id, job_id=job_id, info=output.info), output.rasters)
        except (TypeError, ValueError) as exc:  # info the codec cannot carry: a task bug
            emit(Failed(id=job_id, job_id=job_id, **_describe_failure(exc)), [])

    def health(self) -> dict[str, Any]:
        return {"device": self.device, "pid": os.getpid(), **self.models.describe()}


def _describe_failure(exc: Exception) -> dict[str, str]:
    text = str(exc)
    if "out of memory" in text.lower() or type(exc).__name__ == "OutOfMemoryError":
        return {
            "code": ErrorCode.OUT_OF_MEMORY.value,
            "message": "the device ran out of memory: try a smaller selection, a smaller tile "
            "(--tile), or close other GPU programs",
        }
    log.error("job failed unexpectedly:\n%s", traceback.format_exc())
    return {
        "code": ErrorCode.INTERNAL.value,
        "message": f"the job failed inside the daemon ({type(exc).__name__}: {text[:300]}); "
        "the daemon log in SFUMATO_HOME/logs has details",
    }


def _release_memory(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()
