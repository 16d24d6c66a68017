"""Joining (or starting) the Ray cluster the daemon's jobs run on, with token auth on.

Ray lets whoever reaches a cluster run code on it, and its token authentication is off by
default: `sfumato serve --ray` always turns it on, with a token kept in SFUMATO_HOME (only
this user may read it; a studio gives every node the same file). A runtime started here
listens on loopback only, with no dashboard and no HTTP proxy: the daemon reaches its
deployment through a handle, and its own ZeroMQ socket stays the only front door.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from sfumato.bridge.protocol import ErrorCode
from sfumato.core.config import Settings
from sfumato.core.errors import SfumatoError

log = logging.getLogger("sfumato.cluster")

APP_NAME = "sfumato"
DEPLOYMENT_NAME = "sfumato-worker"
INSTALL_HINT = "pip install 'sfumato[ray]'"
LOCAL = "local"  # `--ray` with no address: a runtime of this machine's own
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


def token_path(home: Path) -> Path:
    return home / "ray" / "auth_token"


def ensure_token(home: Path) -> Path:
    """The cluster's shared secret: made once, readable by this user only (0600)."""
    path = token_path(home)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)  # a copied-in token keeps no group or other access
    return path


def import_ray() -> Any:
    try:
        import ray
        from ray import serve  # noqa: F401 - the extra installs both
    except ImportError as exc:
        raise SfumatoError(
            ErrorCode.MISSING_DEPENDENCY,
            f"`sfumato serve --ray` needs Ray Serve, which is not installed ({exc}); "
            f"install it with: {INSTALL_HINT}",
        ) from None
    return ray


def connect(settings: Settings, address: str) -> str:
    """Join the cluster at `address`, or start a local runtime for LOCAL. Returns how:
    "started" (this process shuts it down on the way out), "joined", or "borrowed" (this
    process was already connected, e.g. a test's). Token auth is set through the
    environment before Ray reads it, so Ray's own processes inherit it."""
    os.environ["RAY_AUTH_MODE"] = "token"
    # Serve's router asks replicas how busy they are before it routes; on a loaded machine
    # its default 0.1 s deadline lapses and a job goes to a replica without its model.
    # Jobs take seconds, so waiting a second for the answer costs little.
    os.environ.setdefault("RAY_SERVE_QUEUE_LENGTH_RESPONSE_DEADLINE_S", "1.0")
    if address == LOCAL or address.rsplit(":", 1)[0] in LOOPBACK:
        # Ray's switch for a single-machine runtime: every process of it on 127.0.0.1 (a
        # process joining one on loopback must not look for it at the node's address)
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(ensure_token(settings.home))
    ray = import_ray()
    from ray import serve

    if ray.is_initialized():  # a test process that already joined (its own fixture)
        return "borrowed"
    common: dict[str, Any] = {"namespace": APP_NAME, "log_to_driver": False,
                              "configure_logging": False}
    try:
        if address == LOCAL:
            ray.init(num_cpus=settings.ray_num_cpus or None, include_dashboard=False,
                     object_store_memory=settings.ray_object_store_bytes, **common)
        else:
            ray.init(address=address, **common)
        serve.start(proxy_location="Disabled")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise SfumatoError(
            ErrorCode.DAEMON_UNAVAILABLE,
            f"could not join the Ray cluster at {address!r} ({exc}); check the address "
            f"(`ray status` on its head node) and that every node uses the token in "
            f"{token_path(settings.home)} (RAY_AUTH_TOKEN_PATH)",
        ) from None
    return "started" if address == LOCAL else "joined"


def replica_plan(settings: Settings, cluster_gpus: float) -> tuple[dict[str, Any], int, int]:
    """Actor options and (min, max) replicas: one replica per GPU in the cluster, unless
    the settings bound it; on a CPU-only cluster, `ray_cpus_per_replica` each."""
    if cluster_gpus >= 1:
        options: dict[str, Any] = {"num_gpus": 1}
        default = int(cluster_gpus)
    else:
        options = {"num_cpus": settings.ray_cpus_per_replica}
        default = 1
    low = settings.ray_min_replicas or default
    return options, low, max(low, settings.ray_max_replicas)


def deploy(settings: Settings) -> tuple[Any, int]:
    """Deploy (or update) the app; its handle and how many jobs to keep in flight."""
    ray = import_ray()
    from ray import serve
    from sfumato.core.cluster.deployment import SfumatoReplica

    options, low, high = replica_plan(settings, ray.cluster_resources().get("GPU", 0.0))
    scaling: dict[str, Any] = (
        {"num_replicas": low} if high == low
        else {"autoscaling_config": {"min_replicas": low, "max_replicas": high,
                                     "target_ongoing_requests": 1}})
    # replicas get pixels from Ray's store, and need no endpoint of their own
    replica_settings = {**dataclasses.asdict(settings), "home": str(settings.home),
                        "shared_memory": False, "endpoint": ""}
    deployment: Any = serve.deployment(SfumatoReplica, name=DEPLOYMENT_NAME,
                                       ray_actor_options=options, max_ongoing_requests=1,
                                       **scaling)
    app = deployment.bind(replica_settings)
    log.info("deploying %s: %s replicas, %s each", APP_NAME,
             low if high == low else f"{low}..{high}", options)
    handle = serve.run(app, name=APP_NAME, route_prefix=None)
    # Jobs beyond the live replicas wait in our fair queue, not Serve's; with autoscaling,
    # up to the upper bound go out so Serve sees the load it scales on.
    return handle, high


def shutdown(how: str) -> None:
    import ray
    from ray import serve

    if how == "started":
        serve.shutdown()
        ray.shutdown()
    elif how == "joined":
        ray.shutdown()  # leave the cluster; the app runs on until a daemon redeploys it
