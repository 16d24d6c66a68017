"""Hostile input from a real client socket against a real daemon process: ten thousand
malformed messages, each answered with a typed error, and the daemon still does real work
afterwards without having grown. Among them: numbers no field can hold, shared-memory
references to every kind of file that is not a sealed memory file, and thousands of tiny
pooled memory files. An oversize frame costs its sender the connection, no one else."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import psutil
import pytest
import zmq
import zmq.utils.monitor
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.raster import Layout, Raster

from tests.support.daemon_process import DaemonProcess
from tests.support.hostile_frames import HostileGenerator
from tests.support.hostile_peer import HOSTILE_SHAPE, hostile_references, memory_file, reference
from tests.support.tiny_upscaler import build_tiny_upscaler

pytestmark = pytest.mark.integration

MESSAGES = 10_000
TINY_FILES = 500
CODES = {code.value for code in ErrorCode}


@pytest.fixture
def bounded_daemon(hostile_daemon: DaemonProcess) -> DaemonProcess:
    return hostile_daemon  # max_pixels 65,536: a small raster bound keeps the frames small


def _dealer(endpoint: str | None, curve: dict[str, bytes]) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    for name, value in curve.items():  # the artist's own keys: a same-user hostile program
        sock.setsockopt(getattr(zmq, name), value)
    if endpoint is not None:
        sock.connect(endpoint)
    return sock


def _rss(daemon: DaemonProcess) -> int:
    return psutil.Process(daemon.process.pid).memory_info().rss


def test_ten_thousand_hostile_messages_get_typed_errors(
    bounded_daemon: DaemonProcess, tmp_path: Path
) -> None:
    with hostile_references(tmp_path) as references:
        tiny = [memory_file(64, data=bytes([i % 256]) * 64) for i in range(TINY_FILES)]
        try:
            _hostile_exchange(bounded_daemon, [ref for _, ref in references],
                              [(reference(fd, token, 64, pooled=True), b"") for fd, token in tiny])
        finally:
            for fd, _ in tiny:
                os.close(fd)
    fds = psutil.Process(bounded_daemon.process.pid).num_fds()
    assert fds < 300, f"the daemon holds {fds} descriptors after {TINY_FILES} tiny files"

    # a well-formed request afterwards: a real job on a real model
    model = build_tiny_upscaler(tmp_path / "tiny-x2.safetensors")
    bounded_daemon.add_model("tiny", model)
    image = Raster(16, 12, Layout.RGBA8, bytes(range(256)) * 3)
    with bounded_daemon.client() as client:
        out = client.run("upscale", {}, [image], "tiny").rasters[0]
    assert (out.width, out.height) == (32, 24)


def _hostile_exchange(bounded_daemon: DaemonProcess, references: list[dict],
                      tiny_files: list[tuple[dict, bytes]]) -> None:
    sock = _dealer(bounded_daemon.endpoint, bounded_daemon.curve_options())
    generator = HostileGenerator(seed=20261124, references=references,
                                 reference_shape=HOSTILE_SHAPE, tiny_files=tiny_files)
    seen: Counter[str] = Counter()

    def exchange(count: int) -> None:
        for case in generator.messages(count):
            sock.send_multipart(case.frames)
            assert sock.poll(10_000), f"no answer to a {case.kind} message"
            reply = sock.recv_multipart()
            header, content = json.loads(reply[1]), json.loads(reply[2])
            if case.rejected:
                assert header["type"] == "rejected", (case.kind, header, content)
                assert content["code"] in CODES and content["message"], (case.kind, content)
            else:
                assert header["type"] != "rejected", (case.kind, content)
            if case.request_id is not None:  # a valid envelope: the answer says to what
                assert header["id"] == case.request_id, case.kind
            seen[case.kind] += 1

    try:
        exchange(500)  # warm up the allocator before taking the baseline
        before = _rss(bounded_daemon)
        exchange(MESSAGES)
        grown = _rss(bounded_daemon) - before
    finally:
        sock.close()
    assert bounded_daemon.process.poll() is None, "the daemon died"
    assert len(seen) == len(generator._makers), f"kinds never generated: {seen}"
    assert grown < 50 << 20, f"daemon memory grew {grown / 1e6:.1f} MB over {MESSAGES} messages"


def test_an_oversize_frame_disconnects_only_its_sender(bounded_daemon: DaemonProcess) -> None:
    from sfumato.core.config import load_settings
    from sfumato.core.daemon.limits import max_frame_bytes

    limit = max_frame_bytes(load_settings(home=bounded_daemon.home))
    flooder = _dealer(None, bounded_daemon.curve_options())
    monitor = flooder.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
    flooder.connect(bounded_daemon.endpoint)
    try:
        assert _next_event(monitor) == zmq.EVENT_CONNECTED
        with bounded_daemon.client() as bystander:
            bystander.ping()
            header = json.dumps({"type": "ping", "id": "big", "rasters": [], "signed": False})
            flooder.send_multipart([b"sfumato/1", header.encode(), b"{}", bytes(limit + 1)])
            assert _next_event(monitor) == zmq.EVENT_DISCONNECTED  # the daemon hung up on it
            assert not flooder.poll(200), "an oversize message was answered"
            bystander.ping()  # the bystander's connection is untouched
            assert bystander.status().worker["ready"]
    finally:
        flooder.disable_monitor()
        monitor.close()
        flooder.close()


def _next_event(monitor: zmq.Socket) -> int:
    assert monitor.poll(10_000), "no socket event"
    return int(zmq.utils.monitor.recv_monitor_message(monitor)["event"])
