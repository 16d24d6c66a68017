"""`sfumato serve --ray`: the real front door (the Daemon loop on a loopback socket, real
clients) dispatching to a real local Ray cluster: two CPU replicas of the Ray Serve
deployment, tiny models. One Ray runtime for the whole module (starting one costs ~20 s on
two cores); it is shut down at the end whatever happens."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sfumato.bridge import shared_pixels
from sfumato.bridge.client import Client, DaemonUnavailable
from sfumato.bridge.endpoints import needs_curve
from sfumato.bridge.protocol import Cancelled, ErrorCode, Failed, Progress, Result, Submit
from sfumato.bridge.raster import Layout, Raster
from sfumato.bridge.transport import local_keys
from sfumato.core.config import Settings, load_settings
from sfumato.core.daemon.keys import ensure_local_keys
from sfumato.core.daemon.server import Daemon
from sfumato.core.models.model_add import register_model
from sfumato.core.models.registry import Registry

from tests.support.daemon_process import free_endpoint
from tests.support.tiny_models import build_tiny_model
from tests.support.tiny_upscaler import build_tiny_upscaler

pytestmark = [pytest.mark.integration, pytest.mark.ray]

SLOW = {"tile": 32}  # many small tiles: a job long enough to poke at, cancellable per tile
GENERATE = {"steps": 3, "resolution": 64, "prompt": "a lighthouse", "seed": 42}
CONFIG = """[daemon]
device = "cpu"
ray_min_replicas = 2
ray_num_cpus = 2
ray_object_store_bytes = 134217728
idle_release_s = 60.0
"""
RAY_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")


@dataclass
class Studio:
    endpoint: str
    home: Path
    settings: Settings
    dispatcher: Any  # the RayDispatcher behind the daemon
    curve: Any

    def client(self, **options: Any) -> Client:
        options = {"timeout_s": 120.0, **options}
        if self.curve is not None:
            options.setdefault("curve", self.curve)
        return Client(self.endpoint, **options)


def _image(width: int, height: int, seed: int = 0) -> Raster:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 4), dtype=np.uint8)
    pixels[..., 3] = 255
    return Raster(width, height, Layout.RGBA8, pixels.tobytes())


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    from sfumato.core.cluster.dispatcher import RayDispatcher

    home = tmp_path_factory.mktemp("studio") / "home"
    home.mkdir()
    registry = Registry(home)
    models = home / "models"
    register_model(registry, "tiny-a", build_tiny_upscaler(models / "a.safetensors"))
    register_model(registry, "tiny-b",
                   build_tiny_upscaler(models / "b.safetensors", features=12))
    register_model(registry, "sd15", build_tiny_model("sd15", models / "sd15"))
    for name in ("tiny-c", "tiny-d"):  # for the routing test only: held nowhere before it
        register_model(registry, name, models / "a.safetensors")
    endpoint = free_endpoint()
    curve = None
    if needs_curve(endpoint):
        ensure_local_keys(home)
        curve = local_keys(home)
    # in config.toml, so a second daemon with this home has the very same settings
    (home / "config.toml").write_text(CONFIG)
    settings = load_settings(endpoint, home)
    saved = {name: os.environ.get(name) for name in RAY_ENV}
    dispatcher = RayDispatcher(settings)
    daemon = Daemon(settings, worker=dispatcher)
    thread: threading.Thread | None = None
    try:
        dispatcher.connect()
        daemon.bind()
        thread = threading.Thread(target=daemon.serve, name="sfumato-studio", daemon=True)
        thread.start()
        yield Studio(daemon.endpoint, home, settings, dispatcher, curve)
    finally:
        if thread is not None:
            daemon.stop()
            daemon.stop()  # the second call leaves the loop at once; serve() stops Ray
            thread.join(timeout=120)
        else:
            dispatcher.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run(studio: Studio, task: str, params: dict, rasters: list[Raster], model: str,
         **options: Any) -> tuple[str, Result, list[Raster]]:
    with studio.client(**options) as client:
        job = client.submit(task, params, rasters, model)
        events = list(client.events(job))
    terminal, out = events[-1]
    assert isinstance(terminal, Result), terminal
    return job.job_id, terminal, out


def test_the_runtime_listens_on_loopback_with_token_auth(studio: Studio) -> None:
    import ray

    token = studio.home / "ray" / "auth_token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert os.environ["RAY_AUTH_MODE"] == "token"
    assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")


def test_two_clients_jobs_run_at_once_on_two_replicas(studio: Studio) -> None:
    image = _image(384, 384)
    _run(studio, "upscale", SLOW, [image], "tiny-a")  # warm: both models loaded somewhere
    started = time.monotonic()
    _run(studio, "upscale", SLOW, [image], "tiny-a")
    one = time.monotonic() - started
    results: dict[str, str] = {}

    def artist(name: str) -> None:
        results[name] = _run(studio, "upscale", SLOW, [image], "tiny-a",
                             client_id=f"artist-{name}")[0]

    threads = [threading.Thread(target=artist, args=(name,)) for name in ("1", "2")]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    two = time.monotonic() - started
    print(f"two equal jobs on two replicas / one job: {two / one:.2f}x ({two:.2f} s / {one:.2f} s)")
    placements = {studio.dispatcher.placements[job_id] for job_id in results.values()}
    assert len(results) == 2 and len(placements) == 2  # each on its own replica


def test_jobs_for_a_model_go_to_the_replica_that_holds_it(studio: Studio) -> None:
    image = _image(64, 64, seed=3)
    where: dict[str, list[str]] = {"tiny-c": [], "tiny-d": []}
    for round_ in range(4):  # one after the other: both replicas are free
        for model in where:
            job_id, result, _ = _run(studio, "upscale", {}, [image], model)
            assert result.info["model"] == model
            where[model].append(studio.dispatcher.placements[job_id])
        if round_ == 0:
            # a replica tells Serve's controller what it holds (every 0.1 s), the controller
            # tells the routers: give the news a moment on a busy machine
            time.sleep(1.0)
    # by chance (a random free replica each time) all four would agree 1 time in 8
    assert len(set(where["tiny-c"])) == 1 and len(set(where["tiny-d"])) == 1, where


def test_results_and_pixels_are_the_local_workers_for_the_same_request_and_seed(
    studio: Studio,
) -> None:
    import torch
    from sfumato.core.worker.worker import Worker

    image = _image(96, 64, seed=5)
    _, remote, remote_pixels = _run(studio, "generate", GENERATE, [image], "sd15")
    local_events: list[tuple[Any, list[Raster]]] = []
    worker = Worker(studio.settings)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a replica given one CPU: float sums depend on the split
    try:
        worker.run(Submit(id="local", task="generate", model="sd15", params=GENERATE), [image],
                   lambda message, rasters: local_events.append((message, rasters)),
                   threading.Event())
    finally:
        torch.set_num_threads(threads)
    local, local_pixels = local_events[-1]
    assert isinstance(local, Result)
    assert remote.info == local.info
    assert [bytes(r.data) for r in remote_pixels] == [bytes(r.data) for r in local_pixels]
    assert remote_pixels[0].width == 96 and np.frombuffer(remote_pixels[0].data, np.uint8).std()


@pytest.mark.skipif(not shared_pixels.available(), reason="needs Linux memfd and /proc")
def test_a_local_client_still_gets_its_pixels_through_shared_memory(
    studio: Studio, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = _image(320, 200, seed=7)
    with studio.client() as client:
        shared = client.run("upscale", {}, [image], "tiny-b").rasters[0]
        assert client.shares_memory
    monkeypatch.setenv("SFUMATO_SHARED_MEMORY", "0")
    with studio.client() as client:
        framed = client.run("upscale", {}, [image], "tiny-b").rasters[0]
        assert not client.shares_memory
    assert (shared.width, shared.height) == (640, 400)
    assert bytes(shared.data) == bytes(framed.data)


def test_a_second_daemon_joins_by_address_and_the_first_serves_on(studio: Studio) -> None:
    import ray

    image = _image(96, 96, seed=15)
    before = set(studio.dispatcher.placements.values())
    _, _, expected = _run(studio, "upscale", {}, [image], "tiny-a")
    endpoint = free_endpoint()
    env = {name: value for name, value in os.environ.items() if name not in RAY_ENV}
    env.update(SFUMATO_HOME=str(studio.home), SFUMATO_ENDPOINT=endpoint)
    address = ray.get_runtime_context().gcs_address
    log = open(studio.home / "joined.out", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen([sys.executable, "-m", "sfumato.core", "serve", "--ray", address],
                               env=env, stdout=log, stderr=log, start_new_session=True)
    try:
        joined = Studio(endpoint, studio.home, studio.settings, None, studio.curve)
        _wait_ready(joined, process)
        _, result, pixels = _run(joined, "upscale", {}, [image], "tiny-a")
        assert result.info["model"] == "tiny-a"
        assert bytes(pixels[0].data) == bytes(expected[0].data)
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()
    # the first daemon serves on, its handle now routing to the replicas the joiner deployed
    job_id, _, pixels = _run(studio, "upscale", {}, [image], "tiny-a")
    assert studio.dispatcher.placements[job_id] not in before
    assert bytes(pixels[0].data) == bytes(expected[0].data)


def test_a_process_with_another_token_cannot_join_the_cluster(studio: Studio) -> None:
    import ray

    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64}
    env.pop("RAY_AUTH_TOKEN_PATH")
    code = ("import ray, sys\n"
            "try:\n    ray.init(address=sys.argv[1], log_to_driver=False)\n"
            "except Exception as exc:\n    print('refused:', type(exc).__name__); sys.exit(3)\n"
            "print(ray.get([ray.remote(lambda: 'ran code')().remote()]))\n")
    done = subprocess.run([sys.executable, "-c", code, ray.get_runtime_context().gcs_address],
                          env=env, capture_output=True, text=True, timeout=120)
    # refused for its token (after Ray's own retries, ~20 s), not for an unreachable address
    assert done.returncode == 3 and "ran code" not in done.stdout, done.stdout
    assert "missing or incorrect" in done.stderr, done.stderr[-2000:]


def _wait_ready(studio: Studio, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 180
    with studio.client(timeout_s=1.0) as client:
        while time.monotonic() < deadline:
            assert process.poll() is None, (studio.home / "joined.out").read_text()[-3000:]
            try:
                if client.status().worker.get("ready"):
                    return
            except DaemonUnavailable:
                pass
            time.sleep(0.2)
    raise AssertionError("the joining daemon did not become ready")


def test_cancel_stops_the_job_on_its_replica(studio: Studio) -> None:
    image = _image(512, 512, seed=9)
    with studio.client() as client:
        job = client.submit("upscale", SLOW, [image], "tiny-a")
        events = client.events(job)
        for message, _ in events:
            if isinstance(message, Progress):
                total = message.total
                break
        assert client.cancel(job.job_id).state == "running"
        terminal = list(events)[-1][0]
    assert isinstance(terminal, Cancelled)
    # the replica that ran it says how its last job ended when it takes the next one:
    # two jobs at once reach both replicas
    for _ in range(3):
        threads = [threading.Thread(target=_run, args=(studio, "upscale", {}, [_image(32, 32)],
                                                       "tiny-a")) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        if job.job_id in studio.dispatcher.endings:
            break
    report = studio.dispatcher.endings[job.job_id]
    assert report["ended"] == "cancelled", report
    assert report["step"] < total  # stopped at a tile, not after the last one


def test_a_replica_killed_mid_job_is_retried_on_another_and_the_daemon_answers(
    studio: Studio,
) -> None:
    import ray

    image = _image(384, 384, seed=11)
    _, _, expected = _run(studio, "upscale", SLOW, [image], "tiny-b")
    with studio.client() as client, studio.client() as probe:
        job = client.submit("upscale", SLOW, [image], "tiny-b")
        events = client.events(job)
        for message, _ in events:
            if isinstance(message, Progress):
                break
        first = studio.dispatcher.placements[job.job_id]
        ray.kill(_replica_actor(first), no_restart=True)
        probe.ping()  # the front door answers while the job moves
        assert probe.status().running is not None
        terminal, out = list(events)[-1]
    assert isinstance(terminal, Result), terminal
    assert studio.dispatcher.placements[job.job_id] != first
    assert bytes(out[0].data) == bytes(expected[0].data)


def test_a_job_whose_replica_dies_twice_fails_worker_lost_and_the_daemon_serves_on(
    studio: Studio,
) -> None:
    import ray

    image = _image(512, 512, seed=13)
    with studio.client() as client, studio.client() as probe:
        job = client.submit("upscale", SLOW, [image], "tiny-a")
        events = client.events(job)
        for message, _ in events:
            if isinstance(message, Progress):
                break
        first = studio.dispatcher.placements[job.job_id]
        ray.kill(_replica_actor(first), no_restart=True)
        deadline = time.monotonic() + 120
        while studio.dispatcher.placements[job.job_id] == first:  # the retry has started
            assert time.monotonic() < deadline, "the job was not retried"
            time.sleep(0.02)
        ray.kill(_replica_actor(studio.dispatcher.placements[job.job_id]), no_restart=True)
        terminal = list(events)[-1][0]
        probe.ping()
        assert probe.status().running is None
    assert isinstance(terminal, Failed) and terminal.code == ErrorCode.WORKER_LOST.value
    assert "died, 2 times" in terminal.message


def _replica_actor(unique_id: str) -> Any:
    import ray
    from ray.util import list_named_actors

    for entry in list_named_actors(all_namespaces=True):
        if entry["name"].endswith(unique_id):
            return ray.get_actor(entry["name"], namespace=entry["namespace"])
    raise AssertionError(f"no actor for replica {unique_id}")


def test_serve_ray_without_ray_installed_says_how_to_install_it(tmp_path: Path) -> None:
    shim = tmp_path / "no-ray"
    (shim / "ray").mkdir(parents=True)
    (shim / "ray" / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim), os.environ.get(
        "PYTHONPATH", "")]), "SFUMATO_HOME": str(tmp_path / "home"),
        "SFUMATO_ENDPOINT": free_endpoint()}
    done = subprocess.run([sys.executable, "-m", "sfumato.core", "serve", "--ray"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "needs Ray Serve" in done.stderr and "pip install 'sfumato[ray]'" in done.stderr
    assert "Traceback" not in done.stderr
