"""`sfumato status`: does a daemon answer, and what is it doing."""

from __future__ import annotations

import argparse
from typing import Any

from sfumato.bridge.client import DaemonUnavailable
from sfumato.core.cli.launcher import cli_client
from sfumato.core.cli.progress_bar import format_seconds
from sfumato.core.config import load_settings


def register(verbs: argparse._SubParsersAction) -> None:
    cmd = verbs.add_parser("status", help="show the daemon's device, models and queue",
                           description="Exit 0 when a daemon answers, 1 when none does. "
                           "Jobs marked * are yours (`sfumato cancel` can stop them).")
    cmd.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.endpoint)
    with cli_client(settings, "status", timeout_s=2.0) as client:
        try:
            report = client.status()
        except DaemonUnavailable as exc:
            print(exc.message)
            return 1
    print(f"daemon {report.daemon_version} at {settings.endpoint}, device {report.device}")
    worker = report.worker
    print(f"worker: {'ready' if worker.get('ready') else 'starting'}, "
          f"restarts {worker.get('restarts', 0)}, loaded {worker.get('loaded', [])}")
    if report.running:
        print(f"running: {running_line(report.running)}")
    print(f"queued: {len(report.queued)}")
    for job in report.queued:
        print(f" {_mine(job)}{job['job_id']} {job['task']} ({job['pixels'] / 1e6:.1f} MP) "
              f"for {job.get('client') or '?'}, waiting {format_seconds(job.get('seconds', 0))}")
    print(f"models: {len(report.models)}")
    for model in report.models:
        print(f"  {model['id']:28} {model['kind']:14} {model['format']}")
    return 0


def running_line(job: dict[str, Any]) -> str:
    step, total, seconds = job["step"], job["total"], float(job.get("seconds", 0))
    progress = f"{step}/{total} {job.get('stage') or ''}".strip() if total else "starting"
    line = (f"{_mine(job)}{job['job_id']} {job['task']} for {job.get('client') or '?'}: "
            f"{progress}, {format_seconds(seconds)}")
    if total and 0 < step < total:
        line += f", about {format_seconds(seconds / step * (total - step))} left"
    return line


def _mine(job: dict[str, Any]) -> str:
    return "*" if job.get("mine") else " "
