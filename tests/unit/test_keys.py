"""Which endpoints need CURVE, and the key store the `sfumato keys` verb manages."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sfumato.bridge.endpoints import is_loopback
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.transport import load_client_keys, local_keys
from sfumato.core.daemon.keys import (
    allowed_clients,
    create_client,
    create_server_keys,
    ensure_local_keys,
    revoke_client,
    server_keys,
)
from sfumato.core.errors import SfumatoError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("endpoint, local", [
    ("tcp://127.0.0.1:5655", True), ("tcp://127.9.9.9:1", True), ("tcp://localhost:5655", True),
    ("tcp://[::1]:5655", True), ("ipc:///tmp/sfumato.sock", True), ("inproc://x", True),
    ("tcp://0.0.0.0:5655", False), ("tcp://*:5655", False), ("tcp://192.168.1.5:5655", False),
    ("tcp://eth0:5655", False), ("tcp://studio-box:5655", False), ("tcp://[::]:5655", False),
])
def test_only_loopback_and_ipc_count_as_local(endpoint: str, local: bool) -> None:
    assert is_loopback(endpoint) is local


def test_keys_are_made_allowed_and_revoked(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with pytest.raises(SfumatoError) as none_yet:
        server_keys(home)
    assert none_yet.value.code is ErrorCode.AUTH_FAILED
    assert "sfumato keys server" in none_yet.value.message
    create_server_keys(home)
    public, _ = server_keys(home)
    create_server_keys(home)  # never silently replaced
    assert server_keys(home)[0] == public
    folder = create_client(home, "laptop", tmp_path / "laptop")
    keys = load_client_keys(folder)
    assert keys.server_public == public
    assert allowed_clients(home) == {"laptop": keys.client_public}
    assert "secret" not in (home / "keys" / "clients" / "laptop.key").read_text()
    assert oct((folder / "client.key_secret").stat().st_mode)[-3:] == "600"
    revoke_client(home, "laptop")
    assert allowed_clients(home) == {}
    with pytest.raises(SfumatoError):
        create_client(home, "../evil", tmp_path / "evil")


def test_first_keys_are_private_from_the_start_and_made_once(tmp_path: Path) -> None:
    """Made with umask 0 (the worst case) by eight racing callers: one key pair each for the
    daemon and this user's programs, in a 0700 folder, every file 0600, no drafts left."""
    home = tmp_path / "home"
    old = os.umask(0)
    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: ensure_local_keys(home), range(8)))
    finally:
        os.umask(old)
    folder = home / "keys"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    names = sorted(p.name for p in folder.iterdir())
    assert names == [".lock", "local.key", "local.key_secret", "server.key", "server.key_secret"]
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    keys = local_keys(home)
    assert keys.server_public == server_keys(home)[0]
    assert keys.client_public != keys.server_public
    ensure_local_keys(home)  # a second start keeps them
    assert local_keys(home) == keys


def test_local_is_not_a_name_for_another_machine(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ensure_local_keys(home)
    with pytest.raises(SfumatoError) as refused:
        create_client(home, "local", tmp_path / "local")
    assert "own programs" in refused.value.message
