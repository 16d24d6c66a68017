"""The wire vocabulary: one frozen dataclass per message type, no I/O.

Enum values are the strings that travel on the wire. Every message carries `id`: a request's
own id, and on replies and job events the id of the request they answer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar

PROTOCOL_NAME = "sfumato"
PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 0


class MessageType(str, Enum):
    HELLO = "hello"
    WELCOME = "welcome"
    SUBMIT = "submit"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    PROGRESS = "progress"
    PREVIEW = "preview"
    RESULT = "result"
    FAILED = "failed"
    CANCELLED = "cancelled"
    CANCEL = "cancel"
    ACK = "ack"
    PING = "ping"
    PONG = "pong"
    STATUS = "status"
    STATUS_REPORT = "status_report"
    FETCH = "fetch"
    GOODBYE = "goodbye"


class ErrorCode(str, Enum):
    """Why something was refused or failed; each comes with a message saying what to do."""

    BAD_FRAME = "bad_frame"
    BAD_VERSION = "bad_version"
    BAD_MESSAGE = "bad_message"
    UNKNOWN_TYPE = "unknown_type"
    AUTH_FAILED = "auth_failed"
    UNKNOWN_TASK = "unknown_task"
    UNKNOWN_MODEL = "unknown_model"
    WRONG_MODEL_KIND = "wrong_model_kind"
    BAD_PARAMS = "bad_params"
    EMPTY_IMAGE = "empty_image"
    EMPTY_SELECTION = "empty_selection"
    IMAGE_TOO_LARGE = "image_too_large"
    UNSUPPORTED_LAYOUT = "unsupported_layout"
    UNSAFE_WEIGHTS = "unsafe_weights"
    CORRUPT_WEIGHTS = "corrupt_weights"
    QUEUE_FULL = "queue_full"
    NOT_FOUND = "not_found"
    RESOURCE_EXHAUSTED = "resource_exhausted"  # out of memory even after degrading
    OUT_OF_MEMORY = "resource_exhausted"  # the older name, kept as an alias
    WORKER_CRASHED = "worker_crashed"  # the worker cannot even start
    WORKER_LOST = "worker_lost"  # the worker died running this job, twice
    FORBIDDEN = "forbidden"  # another client's job
    DAEMON_STOPPING = "daemon_stopping"
    DAEMON_UNAVAILABLE = "daemon_unavailable"
    TIMEOUT = "timeout"
    INTERNAL = "internal"
    MISSING_DEPENDENCY = "missing_dependency"  # e.g. the editor's Python has no pyzmq


class JobState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Task(str, Enum):
    UPSCALE = "upscale"
    INPAINT = "inpaint"
    REFINE = "refine"
    PREPROCESS = "preprocess"  # a control image from a picture (canny, lineart, depth...)


@dataclass(frozen=True)
class Message:
    """Base of every message. `TYPE` names the wire type; rasters travel beside, not inside."""

    TYPE: ClassVar[MessageType]
    id: str

    def fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


# --- client -> daemon -------------------------------------------------------------------


@dataclass(frozen=True)
class Hello(Message):
    TYPE = MessageType.HELLO
    client: str = "unknown"
    protocol_minor: int = PROTOCOL_MINOR


@dataclass(frozen=True)
class Submit(Message):
    """Run `task` on the attached rasters. `model` is a registry id, never a path or URL."""

    TYPE = MessageType.SUBMIT
    task: str = ""
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    client: str = ""  # a readable label for logs and status, e.g. "sfumato upscale[4242]"


@dataclass(frozen=True)
class Cancel(Message):
    TYPE = MessageType.CANCEL
    job_id: str = ""


@dataclass(frozen=True)
class Ping(Message):
    """Liveness and heartbeat; rasters attached to a ping come back on the pong."""

    TYPE = MessageType.PING


@dataclass(frozen=True)
class Status(Message):
    TYPE = MessageType.STATUS


@dataclass(frozen=True)
class Fetch(Message):
    """Ask again for a finished job's result, e.g. after a reconnect."""

    TYPE = MessageType.FETCH
    job_id: str = ""


@dataclass(frozen=True)
class Goodbye(Message):
    """The client is leaving on purpose: its queued and running jobs are cancelled (no reply).
    A client that vanishes without it keeps its running job (a crashed plug-in reconnects)."""

    TYPE = MessageType.GOODBYE


# --- daemon -> client -------------------------------------------------------------------


@dataclass(frozen=True)
class Welcome(Message):
    TYPE = MessageType.WELCOME
    daemon_version: str = ""
    protocol_minor: int = PROTOCOL_MINOR
    tasks: list[str] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    device: str = ""
    limits: dict[str, int] = field(default_factory=dict)
    missed: list[str] = field(default_factory=list)  # kept results this client never got


@dataclass(frozen=True)
class Accepted(Message):
    TYPE = MessageType.ACCEPTED
    job_id: str = ""
    position: int = 0


@dataclass(frozen=True)
class Rejected(Message):
    TYPE = MessageType.REJECTED
    code: str = ErrorCode.BAD_MESSAGE.value
    message: str = ""


@dataclass(frozen=True)
class Progress(Message):
    TYPE = MessageType.PROGRESS
    job_id: str = ""
    step: int = 0
    total: int = 0
    stage: str = ""


@dataclass(frozen=True)
class Preview(Message):
    """A small raster of the work in progress; the raster travels as frame data."""

    TYPE = MessageType.PREVIEW
    job_id: str = ""
    step: int = 0


@dataclass(frozen=True)
class Result(Message):
    """A job's output rasters. `info` carries what the host needs to place them (offsets,
    names, the seed used) as documented by each task."""

    TYPE = MessageType.RESULT
    job_id: str = ""
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failed(Message):
    TYPE = MessageType.FAILED
    job_id: str = ""
    code: str = ErrorCode.INTERNAL.value
    message: str = ""


@dataclass(frozen=True)
class Cancelled(Message):
    TYPE = MessageType.CANCELLED
    job_id: str = ""


@dataclass(frozen=True)
class Ack(Message):
    """Reply to a cancel: the job's state when the cancel arrived."""

    TYPE = MessageType.ACK
    job_id: str = ""
    state: str = ""


@dataclass(frozen=True)
class Pong(Message):
    TYPE = MessageType.PONG


@dataclass(frozen=True)
class StatusReport(Message):
    TYPE = MessageType.STATUS_REPORT
    daemon_version: str = ""
    device: str = ""
    running: dict[str, Any] | None = None
    queued: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    worker: dict[str, Any] = field(default_factory=dict)


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.TYPE.value: cls
    for cls in (
        Hello, Submit, Cancel, Ping, Status, Fetch, Goodbye, Welcome, Accepted, Rejected,
        Progress, Preview, Result, Failed, Cancelled, Ack, Pong, StatusReport,
    )
}

TERMINAL_TYPES = frozenset({MessageType.RESULT, MessageType.FAILED, MessageType.CANCELLED})
