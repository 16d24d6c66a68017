"""Daemon and CLI settings: environment first, then SFUMATO_HOME/config.toml, then defaults."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from sfumato.bridge.endpoints import default_home, resolve_endpoint

DEFAULT_UPSCALER = "realesrgan-x4plus"


@dataclass(frozen=True)
class Settings:
    home: Path
    endpoint: str
    max_pixels: int = 16384 * 16384  # per input raster; larger ones are refused, not tried
    max_queue: int = 32
    max_queue_per_client: int = 8
    model_cache_bytes: int = 8 << 30
    result_keep_bytes: int = 1 << 30  # finished results kept for `fetch` after a disconnect
    client_timeout_s: float = 30.0  # a client silent this long has gone: drop its jobs
    allow_pickle: bool = False  # never unpickle anything; .pth goes through weights_only
    idle_exit_s: float = 0.0  # 0 = serve forever; auto-started daemons exit when idle
    default_upscaler: str = DEFAULT_UPSCALER
    device: str = "auto"
    result_keep_s: float = 24 * 3600.0  # how long an unfetched result waits for its client
    stop_timeout_s: float = 30.0  # on SIGTERM, how long a running job may take to finish
    # memory the worker may take beyond its start-up footprint (models + one job); 0 = no cap.
    # Past it, a job fails with resource_exhausted instead of swapping or waking the OOM killer.
    worker_memory_bytes: int = 0
    # a job's working memory (and CUDA's cache) goes back once no job followed for this long
    idle_release_s: float = 1.0
    # a worker running a job that sends nothing (no progress, no heartbeat) for this long is
    # hung: it is killed and replaced, its job retried once; 0 = never
    worker_watchdog_s: float = 120.0
    # a job that sends no event (progress, preview, result) for this long is stuck, e.g. in a
    # device call that never returns (its heartbeat goes on): the same; 0 = never
    job_stall_s: float = 1800.0
    # replies a client has not read (queued frames, reply files it holds) past which a ping
    # echo is refused: a client that never reads cannot make the daemon hold pixels without end
    client_reply_bytes: int = 512 << 20
    # CURVE on loopback TCP too, with keys made on first start (SFUMATO_HOME/keys): another
    # local user can neither connect nor pose as the daemon. false opens a loopback endpoint
    # to every local user (clients then need SFUMATO_CURVE=off); for measuring only
    curve_on_loopback: bool = True
    # queued jobs of one authenticated identity (a CURVE key: this user's programs share one,
    # each remote machine has its own), whatever client ids it names
    max_queue_per_identity: int = 16
    # --- speed (issue 8) ---
    shared_memory: bool = True  # pixels through memory files for clients on this machine
    # auto | bf16 | fp16 | fp32; auto = bf16 on CUDA (fp16 where it lacks bf16), else fp32
    dtype: str = "auto"
    compile: bool = False  # torch.compile the denoiser / upscaler (compiled code cached in home)
    upscale_batch: int = 0  # upscaler tiles per forward pass; 0 = auto (4 on CUDA, 1 on CPU)
    vae_tiling_pixels: int = 2048 * 2048  # VAE works in tiles above this crop area; 0 = never
    # --- studio: `sfumato serve --ray` (issue 21) ---
    ray_min_replicas: int = 0  # 0 = one per GPU in the cluster (one on a CPU-only cluster)
    ray_max_replicas: int = 0  # above ray_min_replicas: Serve autoscales between the two
    ray_cpus_per_replica: float = 1.0  # on a cluster without GPUs
    ray_num_cpus: int = 0  # CPUs of a runtime `--ray` starts itself; 0 = all of them
    ray_object_store_bytes: int = 256 << 20  # its object store (pixels in flight)

    def __post_init__(self) -> None:
        # a typo in config.toml stops `sfumato serve` with this message, not a worker later
        from sfumato.core.device.speed_options import SpeedOptions

        SpeedOptions.from_settings(self)


__all__ = ["DEFAULT_UPSCALER", "Settings", "default_home", "load_settings"]


def load_settings(endpoint: str | None = None, home: Path | None = None) -> Settings:
    home = home or default_home()
    values: dict[str, object] = {}
    config_file = home / "config.toml"
    if config_file.exists():
        with config_file.open("rb") as handle:
            values.update(tomllib.load(handle).get("daemon", {}))
    known = Settings.__dataclass_fields__
    values = {k: v for k, v in values.items() if k in known and k not in ("home", "endpoint")}
    return Settings(home=home, endpoint=resolve_endpoint(endpoint), **values)  # type: ignore[arg-type]
