"""Which endpoints need CURVE, and the key store the `sfumato keys` verb manages."""

from __future__ import annotations

from pathlib import Path

import pytest
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.transport import load_client_keys
from sfumato.core.daemon.keys import (
    allowed_clients,
    create_client,
    create_server_keys,
    is_loopback,
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
    with pytest.raises(SfumatoError):
        create_server_keys(home)  # never silently replaced
    public, _ = server_keys(home)
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
