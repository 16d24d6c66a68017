"""Options go where people put them, and `doctor` reports a broken check instead of crashing."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sfumato.core.cli import build_parser

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("argv", [
    ["serve", "--endpoint", "tcp://127.0.0.1:7001"],
    ["--endpoint", "tcp://127.0.0.1:7001", "serve"],
    ["models", "list", "--endpoint", "tcp://127.0.0.1:7001"],
    ["upscale", "in.png", "--endpoint", "tcp://127.0.0.1:7001", "-o", "out.png"],
])
def test_the_endpoint_is_taken_before_or_after_the_verb(argv: list[str]) -> None:
    assert build_parser().parse_args(argv).endpoint == "tcp://127.0.0.1:7001"


def test_without_the_option_the_endpoint_is_left_to_the_environment() -> None:
    assert build_parser().parse_args(["status"]).endpoint is None


def test_doctor_reports_a_missing_spandrel_without_a_traceback(tmp_path) -> None:
    script = ("import sys; sys.modules['spandrel'] = None\n"  # as if it were not installed
              "from sfumato.core.cli import main\n"
              "sys.exit(main(['doctor', '--endpoint', 'tcp://127.0.0.1:9']))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env={"SFUMATO_HOME": str(tmp_path), "PATH": "/usr/bin"})
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    assert "spandrel" in lines and "ok" not in lines["spandrel"]
    assert "upscalers" in lines and "check failed" in lines["upscalers"]
    # the checks after the broken one still ran
    assert lines["daemon"].split(None, 1)[1].startswith("not running")
    assert done.stdout.count("torchvision") <= 1
