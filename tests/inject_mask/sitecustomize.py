"""Loaded (through PYTHONPATH) by a test's daemon worker only: the segmenter's answer is a
known mask of the picture it was given (tests/support/tiny_segmenters.known_mask), the one
double the segmentation tests allow, at the model's boundary. Everything else (the daemon,
the task's crop and offset, the loader, the transport, the host) is real."""

from __future__ import annotations

import sys
from pathlib import Path

if "--multiprocessing-fork" in sys.argv:  # the worker process
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from sfumato.core.models.segmenter_run import Segmenter

        from tests.support.tiny_segmenters import known_mask

        def _known(self, rgba8, prompts):  # noqa: ANN001, ANN202
            return known_mask(*rgba8.shape[:2])

        Segmenter.segment = _known  # type: ignore[method-assign]
    except ImportError:  # not sfumato's interpreter
        pass
