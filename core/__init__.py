"""sfumato daemon: server, queue, worker, tasks and models."""

__version__ = "0.1.0"
