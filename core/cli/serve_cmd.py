"""`sfumato serve`: run the daemon in the foreground."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys

from sfumato.bridge.endpoints import key_from_env
from sfumato.core.config import load_settings


def register(verbs: argparse._SubParsersAction) -> None:
    cmd = verbs.add_parser("serve", help="run the daemon in the foreground",
                           description="Run the daemon: it loads models on first use and "
                           "serves GIMP, Krita and the CLI until stopped (Ctrl-C or SIGTERM: "
                           "the running job gets stop_timeout_s to finish). It listens on "
                           "loopback unless SFUMATO_ENDPOINT says otherwise, with CURVE "
                           "keys it makes on its first start (SFUMATO_HOME/keys, this "
                           "user's only); any other address also needs allowed client keys "
                           "(see `sfumato keys`).")
    cmd.add_argument("--idle-exit", type=float, default=None, metavar="SECONDS",
                     help="exit after this long with no clients and no jobs (default: never)")
    cmd.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                     help="run jobs on Ray Serve replicas (one per GPU) instead of the local "
                     "worker: a runtime of this machine's own, or the cluster at ADDRESS "
                     "(token auth on; needs pip install 'sfumato[ray]')")
    cmd.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from sfumato.core.daemon.server import Daemon
    from sfumato.core.logs import configure_logging

    settings = load_settings(args.endpoint)
    if args.idle_exit is not None:
        settings = dataclasses.replace(settings, idle_exit_s=args.idle_exit)
    log_path = configure_logging(settings.home, "daemon")
    backend = None
    if args.ray is not None:
        from sfumato.core.cluster.dispatcher import RayDispatcher

        backend = RayDispatcher(settings, args.ray)
        print(f"joining Ray ({args.ray}) and deploying the workers...", flush=True)
        backend.connect()  # a missing extra or a wrong address stops here, typed
    daemon = Daemon(settings, key=key_from_env(), worker=backend)
    endpoint = daemon.bind()
    # graceful: refuse new work, let the running job finish within stop_timeout_s, tell
    # clients; a second signal stops at once
    signal.signal(signal.SIGTERM, lambda *_: daemon.stop())
    signal.signal(signal.SIGINT, lambda *_: daemon.stop())
    print(f"sfumato daemon listening on {endpoint} (log: {log_path})", flush=True)
    try:
        daemon.serve()
    except KeyboardInterrupt:
        pass
    print("sfumato daemon stopped", file=sys.stderr)
    return 0

