"""The command line's progress bar: it moves with every event and says how long is left."""

from __future__ import annotations

import io

import pytest
from sfumato.bridge.protocol import Progress
from sfumato.core.cli.progress_bar import ProgressBar, format_seconds

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_gives_the_time_left_at_the_pace_so_far() -> None:
    clock, out = Clock(), Terminal()
    bar = ProgressBar("[1/1] photo.png", out, clock=clock)
    bar(Progress(id="r", job_id="j", step=1, total=41, stage="upscale"), [])
    assert "ETA" not in out.getvalue()  # one event tells no pace yet
    clock.now += 10.0  # 10 more steps in 10 s: 30 left
    bar(Progress(id="r", job_id="j", step=11, total=41, stage="upscale"), [])
    last = out.getvalue().split("\r")[-2]
    assert "11/41 upscale ETA 30s" in last and "[1/1] photo.png [#######" in last


def test_without_a_terminal_a_line_per_quarter_or_every_ten_seconds() -> None:
    clock, out = Clock(), io.StringIO()
    bar = ProgressBar("job", out, clock=clock)
    for step in range(0, 10):
        bar(Progress(id="r", job_id="j", step=step, total=100), [])
        clock.now += 0.5
    assert len(out.getvalue().splitlines()) == 1
    clock.now += 10.0
    bar(Progress(id="r", job_id="j", step=11, total=100), [])
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "11/100" in lines[-1] and "ETA" in lines[-1]


def test_seconds_read_as_people_write_them() -> None:
    assert [format_seconds(s) for s in (4.4, 65, 3725)] == ["4s", "1m05s", "1h02m"]
