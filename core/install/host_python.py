"""What an editor's embedded Python can import: the plug-ins need pyzmq there, not here."""

from __future__ import annotations

import subprocess


def pyzmq_version(python: str) -> str:
    """pyzmq's version as `python` imports it, or "" when it cannot (or `python` won't run)."""
    try:
        check = subprocess.run([python, "-c", "import zmq; print(zmq.pyzmq_version())"],
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return check.stdout.strip() if check.returncode == 0 else ""
