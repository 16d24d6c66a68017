"""`sfumato doctor`: what works on this machine, and what to do about what does not."""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

from sfumato.bridge.client import Client, DaemonUnavailable
from sfumato.bridge.raster import Layout, Raster
from sfumato.core.config import load_settings
from sfumato.core.models.registry import Registry


def register(verbs: argparse._SubParsersAction) -> None:
    cmd = verbs.add_parser("doctor", help="check torch, models, the daemon and the transport")
    cmd.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.endpoint)
    problems = 0
    print(f"home         {settings.home}")
    print(f"endpoint     {settings.endpoint}")
    for package in ("torch", "diffusers", "transformers", "spandrel", "zmq"):
        found = importlib.util.find_spec(package) is not None
        problems += not found
        print(f"{package:13}{'ok' if found else 'missing: pip install sfumato[daemon]'}")
    if importlib.util.find_spec("torch") is not None:
        from sfumato.core.models.torchvision_guard import prepare_spandrel_import
        from sfumato.core.worker.worker import pick_device

        print(f"device       {pick_device(settings.device)}")
        warning = prepare_spandrel_import()
        print(f"upscalers    {warning or 'all architectures available'}")
    print(f"network      {_network_access(settings.home, settings.endpoint)}")
    entries = Registry(settings.home).entries()
    print(f"models       {len(entries)} registered" + ("" if entries else
          " (the default upscaler is imported on first use)"))
    with Client(settings.endpoint, timeout_s=2.0) as client:
        try:
            layer = Raster(3840, 2160, Layout.RGBA8, bytes(3840 * 2160 * 4))
            start = time.perf_counter()
            client.ping([layer])
            elapsed = time.perf_counter() - start
            print(f"daemon       answers; a 4K layer round trip took {elapsed * 1e3:.0f} ms")
        except DaemonUnavailable:
            print("daemon    not running (any command that needs it starts one)")
    return 1 if problems else 0


def _network_access(home: Path, endpoint: str) -> str:
    import zmq
    from sfumato.core.daemon.keys import allowed_clients, is_loopback, keys_dir

    if not zmq.has("curve"):
        return "loopback only: this pyzmq lacks CURVE (libsodium); reinstall pyzmq from PyPI"
    if is_loopback(endpoint):
        return "loopback only (no keys needed); `sfumato keys --help` to serve other machines"
    if not (keys_dir(home) / "server.key").exists():
        return "this endpoint needs CURVE keys: run `sfumato keys server`"
    return f"CURVE, {len(allowed_clients(home))} client key(s) allowed (`sfumato keys list`)"

