"""Which CURVE key each client id belongs to.

A client names its own ZeroMQ routing id, so an id alone proves nothing: a program holding
another allowed key (a second studio machine) could name the id of someone else's program.
The first key seen with an id owns it for as long as the daemon remembers the client; a
message under that id with any other key is refused and never acted on. Jobs and kept
results remember the owner's key too, so even after the daemon forgets a silent client its
results go only to the key that asked for them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sfumato.bridge.protocol import ErrorCode
from sfumato.core.daemon.client_names import same_owner
from sfumato.core.errors import SfumatoError

log = logging.getLogger("sfumato.auth")

BORROWED_ID = ("this client id belongs to a program with another key; every program must use "
               "its own id (the client library makes a random one)")


@dataclass
class PeerKeys:
    _bound: dict[bytes, bytes] = field(default_factory=dict)

    def admit(self, identity: bytes, key: bytes) -> bool:
        """True when `key` may speak for `identity` (binding the id on its first message)."""
        bound = self._bound.setdefault(identity, key)
        return bound == key

    def key(self, identity: bytes) -> bytes:
        """The key `identity` proved; b"" on sockets without CURVE (ipc, inproc)."""
        return self._bound.get(identity, b"")

    def forget(self, identity: bytes) -> None:
        self._bound.pop(identity, None)


def check_owner(owner: tuple[bytes, bytes] | None, identity: bytes, key: bytes, job_id: str,
                what: str, name: str) -> None:
    """FORBIDDEN unless the client `identity` (shown as `name`) with `key` may `what` the job
    whose owner is (client id, key): its own, or its command-line family's, under one key."""
    if owner is None or (same_owner(owner[0], identity) and owner[1] == key):
        return
    log.warning("client %s tried to %s job %s of another client", name, what, job_id)
    raise SfumatoError(ErrorCode.FORBIDDEN, f"job {job_id} belongs to another client; only "
                       f"the program that submitted it can {what} it")
