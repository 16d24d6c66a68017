"""ipc:// endpoints another local user could reach or take are refused, saying what to do."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from sfumato.bridge.errors import SfumatoError
from sfumato.bridge.private_ipc import check_private_ipc
from sfumato.bridge.protocol import ErrorCode


def _refused(endpoint: str, words: str) -> None:
    with pytest.raises(SfumatoError) as info:
        check_private_ipc(endpoint)
    assert info.value.code == ErrorCode.AUTH_FAILED
    assert words in info.value.message and "only you can write" in info.value.message


def test_tcp_and_a_private_folder_pass(tmp_path: Path) -> None:
    check_private_ipc("tcp://127.0.0.1:5655")
    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    check_private_ipc(f"ipc://{folder}/sfumato.sock")
    with socket.socket(socket.AF_UNIX) as server:  # a socket of ours already there
        server.bind(str(folder / "bound.sock"))
        check_private_ipc(f"ipc://{folder}/bound.sock")


def test_an_abstract_socket_is_refused() -> None:
    _refused("ipc://@sfumato", "abstract")


def test_a_folder_others_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    _refused(f"ipc://{shared}/sfumato.sock", "written by other users")
    _refused("ipc:///tmp/sfumato.sock", "written by other users")


def test_something_else_at_the_path_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    (folder / "sfumato.sock").write_text("")
    _refused(f"ipc://{folder}/sfumato.sock", "not a socket of yours")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the socket to another uid")
def test_another_users_socket_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(folder / "sfumato.sock"))
        os.chown(folder / "sfumato.sock", 4242, 4242)
        _refused(f"ipc://{folder}/sfumato.sock", "another program holds")
