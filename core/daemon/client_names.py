"""Who a client is, for people and for ownership.

A client is its ZeroMQ routing id; the bridge client's is ID/CONNECTION (a suffix per
connection). Logs and `sfumato status` show the readable label it sent (program name + pid,
e.g. "sfumato upscale[4242]") instead of the id. Ids share their jobs within their family,
everything before the first "/": one client's connections, and the command line's processes
of one user (FAMILY/UNIQUE/CONNECTION), so `sfumato cancel` may stop another's job.
"""

from __future__ import annotations

MAX_LABEL = 60


def family(identity: bytes) -> bytes:
    head, sep, _ = identity.partition(b"/")
    return head if sep and head else identity


def same_owner(owner: bytes, identity: bytes) -> bool:
    return owner == identity or family(owner) == family(identity)


class ClientNames:
    """Labels by routing id; a client that never sent one is shown by its id's start."""

    def __init__(self) -> None:
        self._labels: dict[bytes, str] = {}

    def note(self, identity: bytes, label: str) -> str:
        clean = "".join(ch for ch in label if ch.isprintable())[:MAX_LABEL]
        if clean:
            self._labels[identity] = clean
        return self.name(identity)

    def name(self, identity: bytes) -> str:
        label = self._labels.get(identity)
        if label is not None:
            return label
        return identity.decode("utf-8", "replace")[-12:] if identity.isascii() else (
            identity.hex()[:12])

    def forget(self, identity: bytes) -> None:
        self._labels.pop(identity, None)
