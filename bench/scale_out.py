"""Scale-out on Ray Serve: N equal jobs through `sfumato serve --ray` with 1 and with 2 CPU
replicas (throughput ratio), and what the Ray path adds to each job against the local worker
(`sfumato serve`), all measured in this run. Real daemon processes on loopback, a local Ray
runtime of two CPUs, a tiny random-weight upscaler.

    .venv/bin/python bench/scale_out.py [--jobs 6] [--side 384] [--latency-jobs 20]
                                        [--gpu-job-s 1.2]

From the measured per-job overhead it also prints the paper estimate for 8 GPUs on 2 nodes
(`--gpu-job-s`: one job's time on one GPU; 1.2 s is SDXL inpaint 1024², bench/README).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sfumato.bridge.client import DaemonUnavailable  # noqa: E402
from sfumato.bridge.endpoints import needs_curve  # noqa: E402
from sfumato.bridge.protocol import Result  # noqa: E402
from sfumato.bridge.raster import Layout, Raster  # noqa: E402
from sfumato.bridge.transport import local_keys  # noqa: E402
from sfumato.core.daemon.keys import ensure_local_keys  # noqa: E402

from tests.support.daemon_process import DaemonProcess, free_endpoint  # noqa: E402
from tests.support.tiny_upscaler import build_tiny_upscaler  # noqa: E402

SLOW = {"tile": 32}
NODE_LINK_BYTES_S = 1.25e9  # 10 GbE between the two nodes, for the paper estimate


def start(home: Path, ray: bool, config: str = "") -> DaemonProcess:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("[daemon]\n" + config)
    endpoint = free_endpoint()
    defaults = {}
    if needs_curve(endpoint):
        ensure_local_keys(home)
        defaults = {"curve": local_keys(home)}
    # one compute thread, as a Ray replica given one CPU has (Ray sets the same for its
    # workers): on a shared two-core machine, thread contention would swamp the comparison
    env = {**os.environ, "SFUMATO_HOME": str(home), "SFUMATO_ENDPOINT": endpoint,
           "OMP_NUM_THREADS": "1"}
    log = open(home / "daemon.out", "wb")  # noqa: SIM115 - lives as long as the process
    command = [sys.executable, "-m", "sfumato.core", "serve", *(["--ray"] if ray else [])]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=log,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    daemon = DaemonProcess(endpoint, home, process, client_defaults=defaults)
    deadline = time.monotonic() + 180
    with daemon.client(timeout_s=1.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError((home / "daemon.out").read_text())
            try:
                if client.status().worker.get("ready"):
                    return daemon
            except DaemonUnavailable:
                pass
            time.sleep(0.2)
    daemon.stop()
    raise RuntimeError("the daemon did not become ready in 180 s")


def one_job(daemon: DaemonProcess, image: Raster, params: dict) -> None:
    with daemon.client(timeout_s=120.0) as client:
        outcome = client.run("upscale", params, [image], "tiny")
        if not isinstance(outcome.result, Result):
            raise RuntimeError(f"job failed: {outcome}")


def wall_of(daemon: DaemonProcess, image: Raster, jobs: int) -> float:
    one_job(daemon, image, SLOW)  # warm: the model loaded on a replica
    one_job(daemon, image, SLOW)
    threads = [threading.Thread(target=one_job, args=(daemon, image, SLOW))
               for _ in range(jobs)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def latencies(daemon: DaemonProcess, count: int) -> list[float]:
    image = Raster(64, 64, Layout.RGBA8, bytes(range(256)) * 64)
    one_job(daemon, image, {})
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        one_job(daemon, image, {})
        samples.append(time.perf_counter() - started)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("--side", type=int, default=384)
    parser.add_argument("--latency-jobs", type=int, default=20)
    parser.add_argument("--gpu-job-s", type=float, default=1.2)
    args = parser.parse_args()
    row = bytes((x * 7 + 30) % 256 for x in range(args.side * 4))
    image = Raster(args.side, args.side, Layout.RGBA8, row * args.side)
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        model = build_tiny_upscaler(Path(folder) / "tiny.safetensors")
        runs = [("local", False, ""),
                ("ray-1", True, "ray_min_replicas = 1\nray_num_cpus = 2\n"),
                ("ray-2", True, "ray_min_replicas = 2\nray_num_cpus = 2\n")]
        for name, ray, config in runs:
            daemon = start(Path(folder) / name, ray, config + "idle_release_s = 60\n")
            try:
                daemon.add_model("tiny", model)
                figures[f"{name} latency"] = statistics.median(
                    latencies(daemon, args.latency_jobs))
                if ray:
                    figures[f"{name} wall"] = wall_of(daemon, image, args.jobs)
            finally:
                daemon.stop()
    local, ray1 = figures["local latency"], figures["ray-1 latency"]
    added = ray1 - local
    speedup = figures["ray-1 wall"] / figures["ray-2 wall"]
    print(f"{'one 64² job, local worker':<34} median {local * 1e3:7.1f} ms")
    print(f"{'one 64² job, Ray (1 replica)':<34} median {ray1 * 1e3:7.1f} ms   "
          f"added {added * 1e3:+.1f} ms ({ray1 / local:.2f}x)")
    print(f"{args.jobs} jobs of {args.side}² tile 32, 1 replica  {figures['ray-1 wall']:7.2f} s")
    print(f"{args.jobs} jobs of {args.side}² tile 32, 2 replicas {figures['ray-2 wall']:7.2f} s"
          f"   throughput {speedup:.2f}x")
    # paper: 8 GPUs on 2 nodes, each job one GPU's time plus the measured overhead, plus a
    # 1024² RGBA8 layer each way between nodes for the half of the jobs on the other node
    transfer = 0.5 * 2 * (1024 * 1024 * 4) / NODE_LINK_BYTES_S
    per_job = args.gpu_job_s + max(added, 0.0) + transfer
    estimate = 8 * args.gpu_job_s / per_job
    print(f"paper, 8 GPUs on 2 nodes, {args.gpu_job_s:g} s jobs: {8 / per_job:.2f} jobs/s, "
          f"{estimate:.2f}x one GPU")
    print(f"verdict: 2 replicas {speedup:.2f}x the throughput of 1 on this machine; "
          f"Ray adds {added * 1e3:.0f} ms per job")
    return 0


if __name__ == "__main__":
    sys.exit(main())
