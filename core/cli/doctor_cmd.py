"""`sfumato doctor`: what works on this machine, and what to do about what does not."""

from __future__ import annotations

import argparse
import functools
import importlib.util
import logging
import time
from collections.abc import Callable
from pathlib import Path

from sfumato.bridge.client import Client, DaemonUnavailable, NotTheDaemon
from sfumato.bridge.raster import Layout, Raster
from sfumato.core.config import load_settings
from sfumato.core.models.registry import Registry


def register(verbs: argparse._SubParsersAction) -> None:
    cmd = verbs.add_parser("doctor", help="check torch, models, the daemon and the transport")
    cmd.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # The checks below report what they find; a library's own log line would say it twice.
    logging.getLogger("sfumato").addHandler(logging.NullHandler())
    settings = load_settings(args.endpoint)
    print(f"home         {settings.home}")
    print(f"endpoint     {settings.endpoint}")
    problems = 0
    for package in ("torch", "diffusers", "transformers", "spandrel", "zmq"):
        problems += not _report(package, functools.partial(_package, package))
    if importlib.util.find_spec("torch") is not None:
        problems += not _report("device", lambda: _device(settings.device))
        problems += not _report("upscalers", _upscalers)
    problems += not _report("network", lambda: _network_access(settings.home, settings.endpoint))
    problems += not _report("models", lambda: _models(settings.home))
    problems += not _report("daemon", lambda: _daemon(settings.endpoint))
    return 1 if problems else 0


def _report(label: str, check: Callable[[], tuple[bool, str]]) -> bool:
    """Run one check and print its line; a check that fails is reported, never a traceback."""
    try:
        ok, line = check()
    except Exception as exc:  # each check's own failure is its finding, not the command's
        ok, line = False, f"check failed: {type(exc).__name__}: {exc}".splitlines()[0]
    print(f"{label:13}{line}")
    return ok


def _package(name: str) -> tuple[bool, str]:
    found = importlib.util.find_spec(name) is not None
    return found, "ok" if found else "missing: pip install sfumato[daemon]"


def _device(wanted: str) -> tuple[bool, str]:
    from sfumato.core.worker.worker import pick_device

    return True, str(pick_device(wanted))


def _upscalers() -> tuple[bool, str]:
    from sfumato.core.models.torchvision_guard import prepare_spandrel_import

    warning = prepare_spandrel_import()
    importlib.import_module("spandrel")  # the guard leaves an absent spandrel to this line
    return True, warning or "all architectures available"


def _models(home: Path) -> tuple[bool, str]:
    entries = Registry(home).entries()
    return True, f"{len(entries)} registered" + (
        "" if entries else " (the default upscaler is imported on first use)")


def _daemon(endpoint: str) -> tuple[bool, str]:
    with Client(endpoint, timeout_s=2.0) as client:
        try:
            layer = Raster(3840, 2160, Layout.RGBA8, bytes(3840 * 2160 * 4))
            start = time.perf_counter()
            client.ping([layer])
            elapsed = time.perf_counter() - start
        except NotTheDaemon as exc:  # a port squatter, or a daemon that refuses this key
            return False, exc.message
        except DaemonUnavailable:
            return True, "not running (any command that needs it starts one)"
    return True, f"answers; a 4K layer round trip took {elapsed * 1e3:.0f} ms"


def _network_access(home: Path, endpoint: str) -> tuple[bool, str]:
    import zmq
    from sfumato.bridge.endpoints import is_loopback
    from sfumato.core.daemon.keys import allowed_clients, keys_dir

    if not zmq.has("curve"):
        return False, ("this pyzmq lacks CURVE (libsodium), which every TCP endpoint needs; "
                       "reinstall pyzmq from PyPI")
    if not endpoint.startswith("tcp://"):
        return True, "ipc: only this user may connect (the socket file is 0600)"
    if is_loopback(endpoint):
        return True, ("loopback, CURVE with this user's keys (SFUMATO_HOME/keys, made on "
                      "first start); `sfumato keys --help` to serve other machines")
    if not (keys_dir(home) / "server.key").exists():
        return False, "this endpoint needs CURVE keys: run `sfumato keys server`"
    return True, (f"CURVE, {len(allowed_clients(home))} client key(s) allowed "
                  "(`sfumato keys list`)")

