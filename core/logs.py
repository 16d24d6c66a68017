"""Daemon logs go to SFUMATO_HOME/logs, one file per process role."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path


def configure_logging(home: Path, role: str) -> Path:
    folder = home / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{role}.log"
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=5 << 20, backupCount=2)
    layout = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
    handler.setFormatter(logging.Formatter(layout))
    root = logging.getLogger("sfumato")
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    return path
