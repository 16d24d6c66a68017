"""Loaded (through PYTHONPATH) by a test's daemon and worker only, to fake what a bug or a
driver would do:
- daemon: a message whose id is `raise-here` makes the decoder raise an error no code path
  expects;
- worker: a job on an image 13 pixels wide never returns (as a device call that hangs),
  while the process and its heartbeat go on."""

from __future__ import annotations

import sys
import time

try:
    from sfumato.bridge import codec

    _decode = codec.decode

    def _decode_or_raise(frames, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if len(frames) > 1 and b"raise-here" in bytes(frames[1]):
            raise ZeroDivisionError("injected by the test")
        return _decode(frames, *args, **kwargs)

    codec.decode = _decode_or_raise

    if "--multiprocessing-fork" in sys.argv:  # the worker process
        from sfumato.core.worker.worker import Worker

        _run = Worker.run

        def _run_or_hang(self, job, rasters, emit, cancelled):  # noqa: ANN001, ANN202
            if rasters and rasters[0].width == 13:
                time.sleep(3600)
            return _run(self, job, rasters, emit, cancelled)

        Worker.run = _run_or_hang  # type: ignore[method-assign]
except ImportError:  # not sfumato's interpreter
    pass
