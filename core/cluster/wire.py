"""What crosses the Ray cluster between the front door and a replica.

Messages travel as our own codec frames (JSON, bytes), never as pickled protocol objects;
pixels as numpy arrays, which Ray keeps in its object store (a zero-copy read on the same
node). Ray's own serialisation wraps these lists inside the cluster only: the front door's
socket still speaks nothing but our protocol.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sfumato.bridge import codec
from sfumato.bridge.protocol import Message
from sfumato.bridge.raster import Raster

PackedRaster = tuple[dict[str, Any], np.ndarray]
REPLICA_EVENT = "replica"  # a job stream's first item: which replica took the job


def pack_message(message: Message) -> list[bytes]:
    return [bytes(frame) for frame in codec.encode(message)]


def unpack_message(frames: list[bytes]) -> Message:
    message, _ = codec.decode(frames)
    return message


def pack_rasters(rasters: list[Raster]) -> list[PackedRaster]:
    """A view of each raster's bytes (no copy here; Ray copies it into its store once)."""
    return [(raster.describe(), np.frombuffer(raster.data, dtype=np.uint8))
            for raster in rasters]


def unpack_rasters(packed: list[PackedRaster], copy: bool = False) -> list[Raster]:
    """Rasters over the arrays as Ray hands them over (read-only views of its store), or
    over copies where they outlive the job (a kept result must not pin the store)."""
    return [Raster(data=memoryview(array.copy() if copy else array).cast("B"), **desc)  # type: ignore[arg-type]
            for desc, array in packed]
