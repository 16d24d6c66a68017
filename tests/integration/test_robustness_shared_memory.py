"""Shared-memory references from a hostile client on the same machine, against a real
daemon process: every kind of file a reference can name is refused without hanging the
loop, tiny pooled files cannot use up the daemon's descriptors, bytes count stride x height,
an unread backlog is bounded, and no client ever sees another client's result."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from sfumato.bridge.shared_pixels import open_reference

from tests.support.daemon_process import DaemonProcess
from tests.support.hostile_peer import (
    HOSTILE_SHAPE,
    RawPeer,
    header,
    hostile_references,
    memory_file,
    reference,
)

pytestmark = pytest.mark.integration

@pytest.fixture
def daemon(hostile_daemon: DaemonProcess) -> DaemonProcess:
    return hostile_daemon  # max_pixels 65,536; client_reply_bytes 4 MiB (conftest)


@pytest.fixture
def peer(daemon: DaemonProcess) -> Iterator[RawPeer]:
    sock = RawPeer(daemon.endpoint, **daemon.curve_options())
    yield sock
    sock.close()


def _still_serving(daemon: DaemonProcess, peer: RawPeer) -> None:
    reply, _, _ = peer.ask(header("ping", "alive"))
    assert reply["type"] == "pong" and reply["id"] == "alive"
    assert daemon.process.poll() is None, "the daemon exited"


def test_references_to_any_other_kind_of_file_are_refused_at_once(
    daemon: DaemonProcess, peer: RawPeer, tmp_path: Path
) -> None:
    with hostile_references(tmp_path) as references:
        for what, ref in references:
            shape = {**HOSTILE_SHAPE, "shm": ref}
            reply, body, _ = peer.ask(header("ping", "ref", [shape]), b"{}", b"")
            assert reply["type"] == "rejected" and reply["id"] == "ref", (what, body)
            assert body["code"] == "bad_frame" and body["message"], (what, body)
            _still_serving(daemon, peer)


def test_thousands_of_tiny_pooled_files_do_not_use_up_descriptors(
    daemon: DaemonProcess, peer: RawPeer
) -> None:
    tiny = {"width": 4, "height": 4, "layout": "rgba8", "stride": 0}
    daemon_process = psutil.Process(daemon.process.pid)
    before = daemon_process.num_fds()
    files = [memory_file(64, data=bytes([i % 256]) * 64) for i in range(1500)]
    try:
        for i, (fd, token) in enumerate(files):
            ref = reference(fd, token, 64, pooled=True)
            reply, _, frames = peer.ask(header("ping", f"t{i}", [{**tiny, "shm": ref}]), b"{}",
                                        b"")
            assert reply["type"] == "pong", reply
            assert frames == [bytes([i % 256]) * 64]  # the daemon read this very file
        grown = daemon_process.num_fds() - before
    finally:
        for fd, _ in files:
            os.close(fd)
    assert grown < 100, f"the daemon holds {grown} more descriptors after 1,500 tiny files"
    _still_serving(daemon, peer)


def test_bytes_count_stride_times_height(daemon: DaemonProcess, peer: RawPeer) -> None:
    stride = 64 << 20  # one pixel per 64 MiB row
    fd, token = memory_file(stride)
    rss = psutil.Process(daemon.process.pid).memory_info().rss
    try:
        raster = {"width": 1, "height": 1, "layout": "rgba8", "stride": stride,
                  "shm": reference(fd, token, stride)}
        reply, body, _ = peer.ask(header("ping", "wide", [raster]), b"{}", b"")
    finally:
        os.close(fd)
    assert reply["type"] == "rejected" and body["code"] == "image_too_large", body
    grown = psutil.Process(daemon.process.pid).memory_info().rss - rss
    assert grown < 16 << 20, f"a 1-pixel raster cost the daemon {grown / 1e6:.0f} MB"
    _still_serving(daemon, peer)


def test_a_client_that_never_reads_is_refused_at_a_bounded_backlog(
    daemon: DaemonProcess,
) -> None:
    layer = {"width": 512, "height": 512, "layout": "rgba8", "stride": 0}  # 1 MiB
    sender = RawPeer(daemon.endpoint, RCVHWM=1, RCVBUF=4096, **daemon.curve_options())
    try:
        for i in range(64):
            sender.send(header("ping", f"u{i}", [layer]), b"{}", bytes(512 * 512 * 4))
        with daemon.client() as bystander:
            bystander.ping()  # the daemon went through all 64 (and answers others)
        replies = [sender.recv()[0]["type"] for _ in range(64)]
    finally:
        sender.close()
    assert "rejected" in replies, "64 MiB of unread echoes were all queued"
    assert replies.count("pong") < 40, replies.count("pong")


def test_a_released_reply_file_never_carries_another_clients_result(
    daemon: DaemonProcess, peer: RawPeer
) -> None:
    layer = {"width": 512, "height": 128, "layout": "rgba8", "stride": 0}  # 256 KiB
    mine = bytes([7]) * (512 * 128 * 4)
    reply, _, _ = peer.ask(header("ping", "a1", [layer], shm=True), b"{}", mine)
    ref = reply["rasters"][0]["shm"]  # the daemon answered through a reply file
    held = open_reference(ref, len(mine))  # ... which this client keeps mapped
    # and yet says it let go of it, hoping to be handed the next client's pixels
    peer.ask(header("ping", "a2", shm=True, shm_release=[ref["token"]]))
    theirs = bytes([200]) * len(mine)
    with daemon.client() as other:
        from sfumato.bridge.raster import Raster

        echoed = other.ping([Raster(512, 128, "rgba8", theirs)])[0]
        assert bytes(echoed.data) == theirs
    assert bytes(held[:]) == mine, "another client's result appeared in a released file"
    held.close()
