"""The words the Krita docker shows about the daemon, and which models go in which list."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sfumato.bridge.protocol import StatusReport

pytestmark = pytest.mark.unit

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "krita"))
from sfumato_krita.daemon_status import BUSY, CONNECTED, ERROR, from_error, from_report  # noqa: E402

MODELS = [{"id": "sdxl-fill", "kind": "sdxl-inpaint"}, {"id": "flux", "kind": "flux-fill"},
          {"id": "realesrgan-x4plus", "kind": "upscaler"}, {"id": "cn", "kind": "controlnet"},
          {"id": "supir-q", "kind": "supir"}]


def test_connected_lists_diffusion_models_and_upscalers_apart() -> None:
    state = from_report(StatusReport(id="1", device="cuda:0", models=MODELS))
    assert state.state == CONNECTED
    assert state.text == "connected on cuda:0, 2 models"
    assert state.diffusion_models == ("flux", "sdxl-fill")
    assert state.upscalers == ("realesrgan-x4plus", "supir-q")  # SUPIR beside the GAN


def test_busy_says_what_runs_and_what_waits() -> None:
    state = from_report(StatusReport(id="1", device="cpu", running={"task": "inpaint"},
                                     queued=[{}, {}], models=MODELS))
    assert state.state == BUSY
    assert state.text == "busy: running inpaint, 2 waiting on cpu"


def test_no_model_says_how_to_add_one() -> None:
    state = from_report(StatusReport(id="1", models=MODELS[2:3]))
    assert state.state == CONNECTED and "sfumato models add" in state.text


def test_no_daemon_says_how_to_start_one() -> None:
    state = from_error("daemon_unavailable", "no sfumato daemon answers at "
                       "tcp://127.0.0.1:5655: start one with `sfumato serve`",
                       "tcp://127.0.0.1:5655")
    assert state.state == ERROR
    assert state.text == ("error: no daemon at tcp://127.0.0.1:5655. Start one with "
                          "`sfumato serve` (or fix the address below)")


def test_missing_pyzmq_says_how_to_get_it() -> None:
    state = from_error("missing_dependency", "this Python cannot import pyzmq (No module "
                       "named 'zmq')", "tcp://127.0.0.1:5655")
    assert state.state == ERROR and "pyzmq" in state.text and "plugins install krita" in state.text


def test_the_status_line_follows_the_code_not_the_words() -> None:
    """A daemon's own message that happens to mention pyzmq is not a missing pyzmq."""
    state = from_error("bad_params", "No module named 'zmq' is not a model id",
                       "tcp://127.0.0.1:5655")
    assert "Krita's Python has no pyzmq" not in state.text
    assert "Check `sfumato status`" in state.text
