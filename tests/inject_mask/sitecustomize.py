"""Loaded (through PYTHONPATH) by a test's daemon worker only: the segmenter's answer is a
known mask of the picture it was given (tests/support/tiny_segmenters.known_mask), the one
double the segmentation tests allow, at the model's boundary. Everything else (the daemon,
the task's crop and offset, the loader, the transport, the host) is real."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

if "--multiprocessing-fork" in sys.argv:  # the worker process
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from sfumato.core.models.segmenter_run import Segmenter

        from tests.support.tiny_segmenters import known_mask

        def _known(self, rgba8, prompts):  # noqa: ANN001, ANN202
            log = os.environ.get("SFUMATO_INJECT_PROMPTS")
            if log:  # what the model was asked, for tests that check the prompts a host sent
                with open(log, "a") as f:
                    f.write(json.dumps({"size": list(rgba8.shape[:2]),
                                        "points": [list(p) for p in prompts.points],
                                        "box": prompts.box, "text": prompts.text}) + "\n")
            return known_mask(*rgba8.shape[:2])

        Segmenter.segment = _known  # type: ignore[method-assign]
    except ImportError:  # not sfumato's interpreter
        pass
