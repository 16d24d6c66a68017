"""Deterministic hostile input for the daemon: malformed multipart messages of every kind a
broken or malicious client could send, each with what the daemon must answer."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

PREFIX = b"sfumato/1"
UNKNOWN_MODELS = ["/etc/passwd", "../../models/x", "http://example.invalid/m.safetensors",
                  "file:///tmp/x", "C:\\models\\x", "nope", ""]


@dataclass(frozen=True)
class Hostile:
    frames: list[bytes]
    request_id: str | None  # the id the reply must carry; None when the envelope is invalid
    rejected: bool  # True: the reply must be a typed rejection
    kind: str


def _json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _header(request_id: object, kind: object, rasters: list | None = None) -> bytes:
    return _json({"type": kind, "id": request_id, "rasters": rasters or [], "signed": False})


def _raster(width: object, height: object, layout: object = "rgba8", **extra: object) -> dict:
    return {"width": width, "height": height, "layout": layout, "stride": 0, **extra}


# JSON that json.loads takes but no field can hold; spliced in as text
OUT_OF_RANGE = [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e999", b"9" * 5000,
                b"-" + b"9" * 5000, b"18446744073709551616", b"9223372036854775808"]
NOT_INTEGERS = ["4", "0x10", 4.0, 4.5, True, None, [4], {"n": 4}, -1]


class HostileGenerator:
    """`messages(n)` yields n cases; the same seed gives the same cases.

    `references`: shared-memory references to files that are not sealed sfumato memory files
    (see hostile_peer.hostile_references), each for a raster of `reference_shape`;
    `tiny_files`: valid references to tiny pooled memory files, as (reference, bytes)."""

    def __init__(self, seed: int, references: Sequence[dict[str, Any]] = (),
                 reference_shape: dict[str, Any] | None = None,
                 tiny_files: Sequence[tuple[dict[str, Any], bytes]] = ()) -> None:
        self.rng = random.Random(seed)
        self._ids: list[str] = []
        self._references = list(references)
        self._reference_shape = reference_shape or {}
        self._tiny_files = list(tiny_files)
        self._makers = [
            self.random_frames, self.bad_prefix, self.wrong_version, self.garbage_header,
            self.truncated_header, self.non_utf8, self.header_not_object, self.missing_id,
            self.unknown_type, self.reply_type, self.wrong_field_types, self.missing_pixels,
            self.huge_declared_size, self.shape_mismatch, self.bad_layout, self.too_many_rasters,
            self.bad_signature, self.deep_json, self.bad_content, self.unknown_task,
            self.unknown_model, self.bad_submit_rasters, self.fetch_unknown, self.too_many_frames,
            self.valid_ping, self.valid_status, self.valid_hello, self.cancel_unknown,
            self.out_of_range_number, self.not_an_integer,
        ]
        if self._references:
            self._makers.append(self.hostile_reference)
        if self._tiny_files:
            self._makers.append(self.tiny_pooled_file)

    def messages(self, count: int) -> Iterator[Hostile]:
        for _ in range(count):
            yield self.rng.choice(self._makers)()

    # --- helpers ------------------------------------------------------------------------

    def _id(self) -> str:
        """Often a repeated id: duplicates must be answered like any other message."""
        if self._ids and self.rng.random() < 0.3:
            return self.rng.choice(self._ids)
        new = f"h{self.rng.randrange(1 << 30):x}"
        self._ids = (self._ids + [new])[-50:]
        return new

    def _bytes(self, most: int = 256) -> bytes:
        return self.rng.randbytes(self.rng.randrange(most + 1))

    # --- invalid envelopes: typed rejection with no id ------------------------------------

    def random_frames(self) -> Hostile:
        count = self.rng.randrange(0, 65)
        frames = [self._bytes(64) for _ in range(count)] or [b""]  # zmq cannot send 0 frames
        return Hostile(frames, None, True, "random_frames")

    def bad_prefix(self) -> Hostile:
        return Hostile([self._bytes(16) + b"x", _header(self._id(), "ping"), b"{}"], None, True,
                       "bad_prefix")

    def wrong_version(self) -> Hostile:
        version = self.rng.choice([b"sfumato/0", b"sfumato/2", b"sfumato/99", b"sfumato/"])
        return Hostile([version, _header(self._id(), "ping"), b"{}"], None, True,
                       "wrong_version")

    def garbage_header(self) -> Hostile:
        return Hostile([PREFIX, self._bytes(), b"{}"], None, True, "garbage_header")

    def truncated_header(self) -> Hostile:
        whole = _header(self._id(), "status")
        return Hostile([PREFIX, whole[: self.rng.randrange(1, len(whole) - 1)], b"{}"], None,
                       True, "truncated_header")

    def non_utf8(self) -> Hostile:
        bad = b'{"type":"ping","id":"\xff\xfe' + self._bytes(8) + b'"}'
        return Hostile([PREFIX, bad, b"{}"], None, True, "non_utf8")

    def header_not_object(self) -> Hostile:
        header = self.rng.choice([b"[]", b"1", b'"ping"', b"null", b"true"])
        return Hostile([PREFIX, header, b"{}"], None, True, "header_not_object")

    def missing_id(self) -> Hostile:
        request_id = self.rng.choice([None, 7, [], {}, True])
        return Hostile([PREFIX, _header(request_id, "ping"), b"{}"], None, True, "missing_id")

    def deep_json(self) -> Hostile:
        depth = self.rng.choice([10_000, 100_000])
        return Hostile([PREFIX, b"[" * depth + b"]" * depth, b"{}"], None, True, "deep_json")

    def too_many_frames(self) -> Hostile:
        request_id = self._id()
        extra = [self._bytes(8) for _ in range(self.rng.randrange(22, 62))]
        return Hostile([PREFIX, _header(request_id, "ping"), b"{}", *extra], None, True,
                       "too_many_frames")

    # --- valid envelopes: a typed rejection carrying the request's id ---------------------

    def unknown_type(self) -> Hostile:
        request_id = self._id()
        kind = self.rng.choice(["dream", "", "PING", "submit ", 3, None])
        return Hostile([PREFIX, _header(request_id, kind), b"{}"], request_id, True,
                       "unknown_type")

    def reply_type(self) -> Hostile:
        request_id = self._id()
        kind = self.rng.choice(["welcome", "result", "failed", "pong", "status_report"])
        return Hostile([PREFIX, _header(request_id, kind), b"{}"], request_id, True,
                       "reply_type")

    def wrong_field_types(self) -> Hostile:
        request_id = self._id()
        content = self.rng.choice([{"task": 5}, {"params": []}, {"model": 3},
                                   {"task": None}, {"params": "x"}])
        return Hostile([PREFIX, _header(request_id, "submit"), _json(content)], request_id,
                       True, "wrong_field_types")

    def missing_pixels(self) -> Hostile:
        request_id = self._id()
        rasters = [_raster(4, 4)] * self.rng.randrange(1, 5)
        return Hostile([PREFIX, _header(request_id, "submit", rasters), b'{"task":"upscale"}'],
                       request_id, True, "missing_pixels")

    def huge_declared_size(self) -> Hostile:
        request_id = self._id()
        big = self.rng.choice([2**31, 2**40, 10**30, 16384 * 16, 1e300, -1, "9" * 5000])
        frame = self._bytes(64)
        header = _header(request_id, "submit", [_raster(big, big)])
        return Hostile([PREFIX, header, b'{"task":"upscale"}', frame], request_id, True,
                       "huge_declared_size")

    def shape_mismatch(self) -> Hostile:
        request_id = self._id()
        width, height = self.rng.randrange(1, 40), self.rng.randrange(1, 40)
        wrong = width * height * 4 + self.rng.choice([-4, -1, 1, 3, 4, 100])
        frame = bytes(max(0, wrong))
        header = _header(request_id, "submit", [_raster(width, height)])
        return Hostile([PREFIX, header, b'{"task":"upscale"}', frame], request_id, True,
                       "shape_mismatch")

    def bad_layout(self) -> Hostile:
        request_id = self._id()
        layout = self.rng.choice(["rgb24", "", None, 5, "RGBA8", "rgba8;drop"])
        header = _header(request_id, "submit", [_raster(2, 2, layout)])
        return Hostile([PREFIX, header, b'{"task":"upscale"}', bytes(16)], request_id, True,
                       "bad_layout")

    def too_many_rasters(self) -> Hostile:
        request_id = self._id()
        rasters = [_raster(1, 1)] * self.rng.randrange(17, 20)
        frames = [bytes(4)] * len(rasters)
        return Hostile([PREFIX, _header(request_id, "submit", rasters), b"{}", *frames],
                       request_id, True, "too_many_rasters")

    def bad_signature(self) -> Hostile:
        """Signed frames sent to a daemon with no key: the mac frame is one too many."""
        request_id = self._id()
        header = _json({"type": "ping", "id": request_id, "rasters": [], "signed": True})
        return Hostile([PREFIX, header, b"{}"], request_id, True, "bad_signature")

    def bad_content(self) -> Hostile:
        request_id = self._id()
        content = self.rng.choice([self._bytes(), b"[1,2]", b"\xff\xff", b"{", b"null"])
        return Hostile([PREFIX, _header(request_id, "cancel"), content], request_id, True,
                       "bad_content")

    def unknown_task(self) -> Hostile:
        request_id = self._id()
        task = self.rng.choice(["dream", "../upscale", "upscale\x00", "__init__", "os.system"])
        header = _header(request_id, "submit", [_raster(2, 2)])
        return Hostile([PREFIX, header, _json({"task": task}), bytes(16)], request_id, True,
                       "unknown_task")

    def unknown_model(self) -> Hostile:
        """Models are chosen by id only: a path or a URL is just an id nobody registered."""
        request_id = self._id()
        model = self.rng.choice(UNKNOWN_MODELS)
        header = _header(request_id, "submit", [_raster(2, 2)])
        content = _json({"task": "upscale", "model": model, "params": {"tile": 32}})
        return Hostile([PREFIX, header, content, bytes(16)], request_id, True, "unknown_model")

    def bad_submit_rasters(self) -> Hostile:
        request_id = self._id()
        case = self.rng.randrange(3)
        if case == 0:  # no image
            return Hostile([PREFIX, _header(request_id, "submit"), b'{"task":"upscale"}'],
                           request_id, True, "bad_submit_rasters")
        if case == 1:  # an empty image
            header = _header(request_id, "submit", [_raster(0, 0)])
            return Hostile([PREFIX, header, b'{"task":"upscale"}', b""], request_id, True,
                           "bad_submit_rasters")
        header = _header(request_id, "submit", [_raster(2, 2)] * 3)  # one too many
        return Hostile([PREFIX, header, b'{"task":"upscale"}', *[bytes(16)] * 3], request_id,
                       True, "bad_submit_rasters")

    def fetch_unknown(self) -> Hostile:
        request_id = self._id()
        content = _json({"job_id": self.rng.choice(["", "nope", "../x", "a" * 300])})
        return Hostile([PREFIX, _header(request_id, "fetch"), content], request_id, True,
                       "fetch_unknown")

    def out_of_range_number(self) -> Hostile:
        """NaN, Infinity, a float past double, an integer past 64 bits or of 5,000 digits, in
        the header, in the content or deep in a submit's params."""
        request_id = self._id()
        number = self.rng.choice(OUT_OF_RANGE)
        where = self.rng.randrange(3)
        head = _header(request_id, "status")
        content = b"{}"
        if where == 0:
            head = head[:-1] + b',"extra":' + number + b"}"
        elif where == 1:
            content = b'{"job_id":"x","n":' + number + b"}"
        else:
            head = _header(request_id, "submit", [_raster(2, 2)])
            content = b'{"task":"upscale","params":{"tile":[1,{"x":' + number + b"}]}}"
        frames = [PREFIX, head, content] + ([bytes(16)] if where == 2 else [])
        return Hostile(frames, request_id, True, "out_of_range_number")

    def not_an_integer(self) -> Hostile:
        request_id = self._id()
        field = self.rng.choice(["width", "height", "stride"])
        raster = {**_raster(2, 2), field: self.rng.choice(NOT_INTEGERS)}
        return Hostile([PREFIX, _header(request_id, "ping", [raster]), b"{}", bytes(16)],
                       request_id, True, "not_an_integer")

    def hostile_reference(self) -> Hostile:
        """Pixels 'in shared memory' that is a FIFO, a socket, a directory, /dev/zero, a
        hugetlb or unsealed memfd, or another process's file."""
        request_id = self._id()
        raster = {**self._reference_shape, "shm": self.rng.choice(self._references)}
        kind = self.rng.choice(["ping", "submit"])
        content = b'{"task":"upscale"}' if kind == "submit" else b"{}"
        return Hostile([PREFIX, _header(request_id, kind, [raster]), content, b""], request_id,
                       True, "hostile_reference")

    # --- valid requests, in between: answered normally ------------------------------------

    def tiny_pooled_file(self) -> Hostile:
        """A valid 4x4 raster in a pooled memory file (of thousands): echoed."""
        request_id = self._id()
        ref, _ = self.rng.choice(self._tiny_files)
        raster = {**_raster(4, 4), "shm": ref}
        return Hostile([PREFIX, _header(request_id, "ping", [raster]), b"{}", b""], request_id,
                       False, "tiny_pooled_file")

    def valid_ping(self) -> Hostile:
        request_id = self._id()
        content = _json({"unknown_field": self.rng.random()})  # unknown fields are tolerated
        return Hostile([PREFIX, _header(request_id, "ping"), content], request_id, False, "ping")

    def valid_status(self) -> Hostile:
        request_id = self._id()
        return Hostile([PREFIX, _header(request_id, "status"), b"{}"], request_id, False,
                       "status")

    def valid_hello(self) -> Hostile:
        request_id = self._id()
        content = _json({"client": self._bytes(32).decode("latin-1")})
        return Hostile([PREFIX, _header(request_id, "hello"), content], request_id, False,
                       "hello")

    def cancel_unknown(self) -> Hostile:
        request_id = self._id()
        return Hostile([PREFIX, _header(request_id, "cancel"), _json({"job_id": "nope"})],
                       request_id, False, "cancel")
