"""Ping and status answer times while the daemon's worker runs a long job, against the same
requests to an idle daemon, measured in this run. A real daemon process on loopback, a tiny
random-weight upscaler busy on a large image in small tiles.

    .venv/bin/python bench/daemon_latency.py [--pairs 200]

Target: every ping+status pair behind a running job answered within 50 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sfumato.bridge.client import Client  # noqa: E402
from sfumato.bridge.protocol import Progress  # noqa: E402
from sfumato.bridge.raster import Layout, Raster  # noqa: E402

from tests.support.daemon_process import start_daemon  # noqa: E402
from tests.support.tiny_upscaler import build_tiny_upscaler  # noqa: E402

TARGET_S = 0.050


def pairs(client: Client, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        client.ping()
        client.status()
        samples.append(time.perf_counter() - started)
    return samples


def describe(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"{name:<22} median {statistics.median(samples) * 1e3:6.2f} ms   "
            f"p99 {p99 * 1e3:6.2f} ms   max {max(samples) * 1e3:6.2f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        daemon = start_daemon(Path(folder) / "home")
        try:
            daemon.add_model("tiny", build_tiny_upscaler(Path(folder) / "tiny.safetensors"))
            row = bytes((x * 7) % 256 for x in range(2048 * 4))
            image = Raster(2048, 2048, Layout.RGBA8, row * 2048)
            with daemon.client() as busy, daemon.client() as probe:
                busy.run("upscale", {}, [Raster(8, 8, Layout.RGBA8, bytes(256))], "tiny")
                idle = pairs(probe, args.pairs)
                job = busy.submit("upscale", {"tile": 32}, [image], "tiny")
                events = busy.events(job)
                next(m for m, _ in events if isinstance(m, Progress))
                loaded = pairs(probe, args.pairs)
                still_running = probe.status().running is not None
                busy.cancel(job.job_id)
                list(events)
        finally:
            daemon.stop()
    print(describe("idle daemon", idle))
    print(describe("behind a running job", loaded))
    ratio = statistics.median(loaded) / statistics.median(idle)
    print(f"median ratio busy/idle {ratio:.2f}x; job still running at the end: {still_running}")
    ok = max(loaded) < TARGET_S and still_running
    print(f"target: max < {TARGET_S * 1e3:.0f} ms behind a job: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
