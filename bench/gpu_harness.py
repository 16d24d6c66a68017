"""What the GPU benchmarks share: the device, timing with synchronisation, peak memory, a
real daemon with the model registered, and the daemon-side measurements (end to end, cancel
latency in steps, warm dequeue -> first step). `--tiny` swaps in the tests' tiny models on
the CPU, to prove a script works end to end where no GPU is lent.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sfumato.bridge.client import Client  # noqa: E402
from sfumato.bridge.protocol import Cancelled, Failed, Progress, Result  # noqa: E402

from tests.support.daemon_process import DaemonProcess, start_daemon  # noqa: E402


def arguments(description: str, steps: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--tiny", action="store_true",
                        help="tiny models on the CPU: checks the script end to end, no figures")
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dtype", default="auto", choices=("auto", "bf16", "fp16", "fp32"))
    parser.add_argument("--compile", action="store_true", help="torch.compile (time reported)")
    parser.add_argument("--side", type=int, default=0,
                        help="input side in px (0: the script's own, smaller with --tiny)")
    parser.add_argument("--work", type=Path, default=Path(os.environ.get(
        "SFUMATO_BENCH_DIR", Path.home() / ".cache" / "sfumato-bench")),
        help="where full-size models are built once and kept")
    return parser.parse_args()


def device_for(args: argparse.Namespace) -> str:
    import torch

    if args.tiny:
        return "cpu"
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run this on the GPU machine, or with --tiny")
    return "cuda"


def machine(device: str) -> str:
    import torch

    where = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu"
    return (f"{where}, torch {torch.__version__}, {platform.node()}, "
            f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")


def synchronise(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def seconds(fn: Callable[[], Any], repeat: int, device: str) -> tuple[float, float]:
    """(first call, median of `repeat` more): the first includes warm-up or compile."""
    synchronise(device)
    start = time.perf_counter()
    fn()
    synchronise(device)
    first = time.perf_counter() - start
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        synchronise(device)
        samples.append(time.perf_counter() - start)
    return first, statistics.median(samples)


def alternating(first: Callable[[], Any], second: Callable[[], Any], repeat: int,
                device: str) -> tuple[float, float]:
    """Medians of `first` and `second` run in turns, so a machine that slows down or speeds
    up in the meantime (other jobs, clocks) weighs on both alike."""
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for fn, into in ((first, samples[0]), (second, samples[1])):
            synchronise(device)
            start = time.perf_counter()
            fn()
            synchronise(device)
            into.append(time.perf_counter() - start)
    return statistics.median(samples[0]), statistics.median(samples[1])


def reset_peak(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()


def release(device: str) -> None:
    import gc

    gc.collect()
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()


def peak_gib(device: str) -> str:
    if device != "cuda":
        return "n/a (cpu)"
    import torch

    return f"{torch.cuda.max_memory_allocated() / (1 << 30):.1f} GiB"


def daemon_config(args: argparse.Namespace) -> str:
    lines = [f'dtype = "{args.dtype}"', f"compile = {'true' if args.compile else 'false'}"]
    if args.tiny:
        lines.append('device = "cpu"')
    return "\n".join(lines) + "\n"


def start_with_model(home: Path, name: str, path: Path, args: argparse.Namespace
                     ) -> DaemonProcess:
    daemon = start_daemon(home, daemon_config(args))
    subprocess.run([sys.executable, "-m", "sfumato.core", "models", "add", name, str(path)],
                   env=daemon.env(), check=True, capture_output=True)
    return daemon


@dataclass
class DaemonFigures:
    first_s: float = 0.0
    median_s: float = 0.0
    dequeue_to_first_step_s: float = 0.0
    steps: int = 0  # steps (or tiles) a job runs, as its progress events count them
    cancel_s: float = -1.0  # cancel sent -> `cancelled` received; -1: the job finished first
    cancel_requested_at: int = 0

    def cancel_text(self, unit: str) -> str:
        """The cancel latency for a table row, or why there is none."""
        if self.cancel_s < 0:
            return "n/a: the job finished before the cancel arrived"
        return (f"{self.cancel_s * 1e3:.0f} ms = {self.cancel_in_steps:.2f} {unit}s (sent at "
                f"{unit} {self.cancel_requested_at}; target <= 1 {unit})")

    @property
    def cancel_in_steps(self) -> float:
        """The cancel latency in steps of this job's own median pace."""
        if self.cancel_s < 0 or not self.steps:
            return -1.0
        return self.cancel_s / (self.median_s / self.steps)
    samples: list[float] = field(default_factory=list)


def measure_daemon(client: Client, task: str, params: dict, rasters: list, model: str,
                   repeat: int, cancel_at: int | None) -> DaemonFigures:
    """End to end through the daemon (first call loads and warms), then on a warm model:
    submit -> first progress event, and how many steps still ran after a cancel."""
    figures = DaemonFigures()
    start = time.perf_counter()
    client.run(task, params, rasters, model=model)
    figures.first_s = time.perf_counter() - start
    for _ in range(repeat):
        start = time.perf_counter()
        client.run(task, params, rasters, model=model)
        figures.samples.append(time.perf_counter() - start)
    figures.median_s = statistics.median(figures.samples)
    figures.dequeue_to_first_step_s, figures.steps = _first_step(client, task, params,
                                                                 rasters, model)
    if cancel_at is not None:
        figures.cancel_requested_at, figures.cancel_s = cancel_latency(
            client, task, params, rasters, model, cancel_at)
    return figures


def _first_step(client: Client, task: str, params: dict, rasters: list, model: str
                ) -> tuple[float, int]:
    """(accepted -> first step, steps in the job): with the queue empty and the model warm,
    the first is dequeue plus preparation (crop, encode) plus one step."""
    job = client.submit(task, params, rasters, model)
    accepted = time.perf_counter()
    first, total = 0.0, 0
    for message, _ in client.events(job):
        if isinstance(message, Progress):
            first = first or time.perf_counter() - accepted
            total = max(total, message.total)
        if isinstance(message, (Result, Cancelled, Failed)):
            break
    return first, total


def cancel_latency(client: Client, task: str, params: dict, rasters: list, model: str,
                   at_step: int) -> tuple[int, float]:
    """Cancel once step `at_step` is reported; returns (that step, seconds from sending the
    cancel to the `cancelled` event), or -1 s when the job finished first. Counting the
    progress events that still arrive would also count steps done before the cancel was
    sent, whose events were on their way."""
    job = client.submit(task, params, rasters, model)
    reached = [0]
    sent = [0.0]

    def should_cancel() -> bool:
        if reached[0] and not sent[0]:
            sent[0] = time.perf_counter()  # the client sends it right after this returns
        return bool(reached[0])

    for message, _ in client.events(job, should_cancel=should_cancel):
        if isinstance(message, Progress) and not reached[0] and message.step >= at_step:
            reached[0] = message.step
        if isinstance(message, Cancelled):
            return reached[0], time.perf_counter() - sent[0]
        if isinstance(message, (Result, Failed)):
            return reached[0], -1.0
    return reached[0], -1.0


def print_table(title: str, rows: list[tuple[str, str]]) -> None:
    print(title)
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")

