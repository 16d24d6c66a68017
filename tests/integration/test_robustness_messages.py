"""One bad message never ends the daemon's loop: numbers JSON allows but no field can use,
strings where integers belong, and an error no code path expects. Each is refused alone, from
a real socket against a real daemon process, and the daemon answers the next ping."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.daemon_process import DaemonProcess
from tests.support.hostile_peer import RawPeer, header

pytestmark = pytest.mark.integration

RASTER = {"width": 4, "height": 4, "layout": "rgba8", "stride": 0}
PIXELS = bytes(64)


@pytest.fixture
def daemon(hostile_daemon: DaemonProcess) -> DaemonProcess:
    return hostile_daemon  # with the test-only fault injection (tests/inject)


@pytest.fixture
def peer(daemon: DaemonProcess) -> Iterator[RawPeer]:
    sock = RawPeer(daemon.endpoint, **daemon.curve_options())
    yield sock
    sock.close()


def _still_serving(daemon: DaemonProcess, peer: RawPeer) -> None:
    reply, _, _ = peer.ask(header("ping", "alive"))
    assert reply["type"] == "pong" and reply["id"] == "alive"
    assert daemon.process.poll() is None, "the daemon exited"


LONG = "9" * 5000
NUMBER_CASES = {
    "5,000-digit integer in the header": (
        b'{"type":"ping","id":"n1","rasters":[],"signed":false,"extra":' + LONG.encode() + b"}",
        b"{}"),
    "5,000-digit integer in the content": (
        header("status", "n2"), b'{"whatever":' + LONG.encode() + b"}"),
    "integer past 64 bits": (header("status", "n3"), b'{"x":18446744073709551616}'),
    "NaN in params": (header("submit", "n4", [RASTER]),
                      b'{"task":"upscale","params":{"tile":NaN}}'),
    "Infinity in params": (header("submit", "n5", [RASTER]),
                           b'{"task":"upscale","params":{"tile":Infinity}}'),
    "-Infinity in params": (header("submit", "n6", [RASTER]),
                            b'{"task":"upscale","params":{"strength":-Infinity}}'),
    "a float that overflows to infinity": (header("submit", "n7", [RASTER]),
                                           b'{"task":"upscale","params":{"strength":1e400}}'),
}


@pytest.mark.parametrize("case", sorted(NUMBER_CASES))
def test_numbers_no_field_can_hold_are_refused_alone(daemon: DaemonProcess, peer: RawPeer,
                                                     case: str) -> None:
    head, content = NUMBER_CASES[case]
    pixels = [PIXELS] if isinstance(head, dict) and head["rasters"] else []
    reply, body, _ = peer.ask(head, content, *pixels)
    assert reply["type"] == "rejected", (case, body)
    assert body["code"] == "bad_message", (case, body)
    if isinstance(head, dict):
        assert reply["id"] == head["id"]
    _still_serving(daemon, peer)  # a NaN that was queued would have killed it at job start


@pytest.mark.parametrize("field,value", [
    ("width", "4"), ("height", "4"), ("stride", "16"), ("width", 4.0), ("height", True),
    ("width", -4), ("layout", 5), ("colorspace", ["srgb"]),
])
def test_raster_fields_must_be_of_their_json_type(daemon: DaemonProcess, peer: RawPeer,
                                                  field: str, value: object) -> None:
    raster = {**RASTER, field: value}
    reply, body, _ = peer.ask(header("ping", "typed", [raster]), b"{}", PIXELS)
    assert reply["type"] == "rejected" and reply["id"] == "typed", body
    assert body["code"] == "bad_message" and field in body["message"], body
    _still_serving(daemon, peer)


def test_an_error_nobody_expected_costs_one_message(daemon: DaemonProcess,
                                                    peer: RawPeer) -> None:
    reply, body, _ = peer.ask(header("ping", "raise-here"))
    assert reply["type"] == "rejected" and body["code"] == "internal", body
    assert "daemon.log" in body["message"]
    _still_serving(daemon, peer)
    with daemon.client() as bystander:
        assert bystander.status().worker["ready"]
