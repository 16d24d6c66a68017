"""`sfumato status`: does a daemon answer, and what is it doing."""

from __future__ import annotations

import argparse

from sfumato.bridge.client import Client, DaemonUnavailable
from sfumato.core.config import load_settings


def register(verbs: argparse._SubParsersAction) -> None:
    cmd = verbs.add_parser("status", help="show the daemon's device, models and queue",
                           description="Exit 0 when a daemon answers, 1 when none does.")
    cmd.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.endpoint)
    with Client(settings.endpoint, timeout_s=2.0) as client:
        try:
            report = client.status()
        except DaemonUnavailable as exc:
            print(exc.message)
            return 1
    print(f"daemon {report.daemon_version} at {settings.endpoint}, device {report.device}")
    worker = report.worker
    print(f"worker: {'ready' if worker.get('ready') else 'starting'}, "
          f"restarts {worker.get('restarts', 0)}, loaded {worker.get('loaded', [])}")
    running = report.running
    if running:
        print(f"running: {running['job_id']} {running['task']} step "
              f"{running['step']}/{running['total']}")
    print(f"queued: {len(report.queued)}")
    for job in report.queued:
        print(f"  {job['job_id']} {job['task']} ({job['pixels'] / 1e6:.1f} MP)")
    print(f"models: {len(report.models)}")
    for model in report.models:
        print(f"  {model['id']:28} {model['kind']:14} {model['format']}")
    return 0
