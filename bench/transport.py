"""Layer round trips: sfumato's client and a real daemon process, through shared memory (a
client on the daemon's machine) and through raw ZeroMQ frames (a remote client, or where
shared memory cannot be used), against two memcpy of the same bytes (the floor: the layer
out and back) and against base64-PNG-in-JSON over HTTP (how the web-UI servers move images).
All measured in this run; 4K and 8K, RGBA8 and RGBA16.

    .venv/bin/python bench/transport.py [--repeat 7] [--sizes 4k,8k] [--http-repeat 1]
    .venv/bin/python bench/transport.py --auth [--repeat 15] [--sizes 4k]

The contenders run in alternating rounds (bench/rounds.py), each ratio is taken within a
round, and the table shows the median per-round ratio and its range, so one noisy sample
cannot make a verdict. Target: shared memory <= 2x the memcpy floor.

--auth: what authentication costs, RGBA8 only. The same round trips against two daemons in
this run, one with CURVE (the default) and one with `curve_on_loopback = false` (before
issue 15), and against a bare pyzmq ROUTER echo process, plain and CURVE. Targets (issue 15):
shared memory with auth <= 1.5x two memcpy; frames with auth <= 1.2x the bare plain echo.
"frames on" is a client of this user on the daemon's machine (through the daemon's
same-machine door, bridge/local_ipc.py); "frames tcp" is the CURVE path a client on another
machine takes (SFUMATO_LOCAL_IPC=off), compared with a bare CURVE echo.
"""

from __future__ import annotations

import argparse
import base64
import ctypes
import io
import json
import os
import platform
import statistics
import struct
import sys
import tempfile
import threading
import urllib.request
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import rounds  # noqa: E402
from sfumato.bridge.client import Client  # noqa: E402
from sfumato.bridge.raster import Layout, Raster  # noqa: E402

from tests.support.daemon_process import start_daemon  # noqa: E402

SIZES = {"4k": (3840, 2160), "8k": (7680, 4320)}
TARGET = 2.0


def layer_pixels(width: int, height: int, layout: Layout) -> np.ndarray:
    """A photo, not noise or flat colour, so PNG costs what it costs on real layers; 16-bit
    layers get a noisy low byte, as scanned or rendered 16-bit images have."""
    photo = Image.open(ROOT / "tests" / "data" / "photo.png").convert("RGBA")
    eight = np.asarray(photo.resize((width, height), Image.Resampling.BILINEAR))
    if layout is Layout.RGBA8:
        return np.ascontiguousarray(eight)
    low = np.random.default_rng(0).integers(0, 256, eight.shape, dtype=np.uint16)
    return (eight.astype(np.uint16) << 8) | low


def touch(pixels: object) -> None:
    """Read one byte of every page: a round trip ends when the client can read the result
    (a shared-memory reply is mapped as it is read; this counts that cost everywhere)."""
    bytes(memoryview(pixels).cast("B")[::4096])  # type: ignore[arg-type]


def race(contenders: dict[str, Callable[[], object]], repeat: int) -> rounds.Rounds:
    for fn in contenders.values():
        fn()  # warm up: connections, page faults, the shared-memory probe
    return rounds.alternate(contenders, repeat)


# --- base64 PNG in JSON over HTTP -----------------------------------------------------------


def png_bytes(pixels: np.ndarray) -> bytes:
    if pixels.dtype == np.uint8:
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, format="PNG")
        return out.getvalue()
    # Pillow cannot write 16-bit RGBA PNG: the standard format, written directly (zlib at
    # Pillow's default level, no row filter, which only makes it faster)
    height, width = pixels.shape[:2]
    rows = np.zeros((height, 1 + width * 8), np.uint8)
    rows[:, 1:] = pixels.astype(">u2").view(np.uint8).reshape(height, -1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    header = struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b""))


def png_pixels(data: bytes) -> np.ndarray:
    if data[24] == 8:  # bit depth in IHDR
        return np.asarray(Image.open(io.BytesIO(data)))
    width, height = struct.unpack(">II", data[16:24])
    start = 33 + 8  # after IHDR, the IDAT chunk's length and type
    length = struct.unpack(">I", data[33:37])[0]
    rows = np.frombuffer(zlib.decompress(data[start : start + length]), np.uint8)
    rows = rows.reshape(height, 1 + width * 8)[:, 1:]
    return rows.copy().view(">u2").astype(np.uint16).reshape(height, width, 4)


class PngJsonHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        pixels = png_pixels(base64.b64decode(body["image"]))
        reply = json.dumps({"image": base64.b64encode(png_bytes(pixels)).decode()}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:
        pass


# --- the run -----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--http-repeat", type=int, default=1)
    parser.add_argument("--sizes", default="4k,8k")
    parser.add_argument("--auth", action="store_true",
                        help="authentication on vs off, and a bare pyzmq echo (RGBA8)")
    args = parser.parse_args()
    if args.auth:
        return auth_main(args)

    server = ThreadingHTTPServer(("127.0.0.1", 0), PngJsonHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as home:
        daemon = start_daemon(Path(home))
        try:
            shared = daemon.client(timeout_s=120)
            os.environ["SFUMATO_SHARED_MEMORY"] = "0"  # this client behaves as a remote one
            framed = daemon.client(timeout_s=120)
            del os.environ["SFUMATO_SHARED_MEMORY"]
            for size in args.sizes.split(","):
                for layout in (Layout.RGBA8, Layout.RGBA16):
                    rows.append(measure(size, layout, shared, framed, url, args))
            shared.close()
            framed.close()
        finally:
            daemon.stop()
    server.shutdown()
    report(rows, args)
    return 0


# label; medians of memcpy, shm, frames, HTTP; per-round shm/floor, frames/floor, HTTP/shm
Row = tuple[str, float, float, float, float, list[float], list[float], list[float]]


def measure(size: str, layout: Layout, shared: Client, framed: Client, url: str,
            args: argparse.Namespace) -> Row:
    width, height = SIZES[size]
    pixels = layer_pixels(width, height, layout)
    buffer = pixels.tobytes()
    raster = Raster(width, height, layout, buffer)

    # the floor: the layer copied out and back by memcpy into buffers that already exist
    # (pure copy bandwidth; fresh buffers would add page faults and flatter everything above)
    out = (ctypes.c_char * len(buffer))()
    back = (ctypes.c_char * len(buffer))()

    def two_memcpy() -> None:
        ctypes.memmove(out, buffer, len(buffer))
        ctypes.memmove(back, out, len(buffer))
        touch(back)

    for client in (shared, framed):
        if bytes(client.ping([raster])[0].data) != buffer:
            raise SystemExit("the daemon changed the pixels")
    if not shared.shares_memory or framed.shares_memory:
        raise SystemExit("shared memory was not used where it should be (or was where not)")

    def http_png() -> None:
        body = json.dumps({"image": base64.b64encode(png_bytes(pixels)).decode()}).encode()
        request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request) as response:
            reply = json.loads(response.read())
        png_pixels(base64.b64decode(reply["image"]))

    def shm() -> None:
        touch(shared.ping([raster])[0].data)

    fast = race({"memcpy": two_memcpy, "shm": shm,
                 "frames": lambda: touch(framed.ping([raster])[0].data)}, args.repeat)
    slow = race({"shm": shm, "http": http_png}, args.http_repeat)  # HTTP takes seconds
    label = f"{size.upper()} {layout.value} ({len(buffer) / 1e6:.0f} MB)"
    return (label, fast.median("memcpy"), fast.median("shm"), fast.median("frames"),
            slow.median("http"), fast.ratios("shm", "memcpy"), fast.ratios("frames", "memcpy"),
            slow.ratios("http", "shm"))


def report(rows: list[Row], args: argparse.Namespace) -> None:
    print(f"Layer round trips, {args.repeat} alternating rounds (HTTP: {args.http_repeat}), "
          f"medians; ratios per round: median (range); {platform.node()} {os.cpu_count()} "
          f"cpus, python {platform.python_version()}, load average {rounds.load_average()}")
    print(f"  {'layer':<22}{'2x memcpy':>11}{'shm':>11}{'frames':>11}{'HTTP+PNG':>11}"
          f"  {'shm/floor':<28}{'frames/floor':<28}HTTP/shm")
    for label, memcpy_s, shared_s, framed_s, http_s, shm_r, frames_r, http_r in rows:
        print(f"  {label:<22}{memcpy_s * 1e3:9.1f}ms{shared_s * 1e3:9.1f}ms"
              f"{framed_s * 1e3:9.1f}ms{http_s * 1e3:9.0f}ms  {rounds.spread(shm_r):<28}"
              f"{rounds.spread(frames_r):<28}{rounds.spread(http_r)}")
    worst = max(statistics.median(row[5]) for row in rows)
    verdict = "ok" if worst <= TARGET else "OVER"
    print(f"verdict: same-machine round trip at most {worst:.2f}x the two-memcpy floor "
          "(median per-round ratio) "
          f"(target <= {TARGET}x): {verdict}")


# --- what authentication costs ----------------------------------------------------------------

ECHO = r"""
import sys, zmq
sock = zmq.Context.instance().socket(zmq.ROUTER)
if sys.argv[1] == "curve":
    sock.curve_server = True
    sock.curve_publickey, sock.curve_secretkey = sys.argv[2].encode(), sys.argv[3].encode()
print(sock.bind_to_random_port("tcp://127.0.0.1"), flush=True)
while True:
    sock.send_multipart(sock.recv_multipart(copy=False), copy=False)
"""


class BareEcho:
    """A pyzmq ROUTER that sends every message back, in its own process (as the daemon is):
    the least any ZeroMQ transport of these bytes can cost, plain or with CURVE."""

    def __init__(self, curve: bool) -> None:
        import subprocess

        import zmq

        server_public, server_secret = zmq.curve_keypair()
        self.process = subprocess.Popen(
            [sys.executable, "-c", ECHO, "curve" if curve else "plain", server_public.decode(),
             server_secret.decode()], stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        port = int(self.process.stdout.readline())
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if curve:
            public, secret = zmq.curve_keypair()
            self.sock.curve_serverkey = server_public
            self.sock.curve_publickey, self.sock.curve_secretkey = public, secret
        self.sock.connect(f"tcp://127.0.0.1:{port}")

    def round_trip(self, buffer: bytes) -> memoryview:
        self.sock.send_multipart([b"x", buffer], copy=False)
        return self.sock.recv_multipart(copy=False)[1].buffer

    def close(self) -> None:
        self.sock.close()
        self.process.kill()
        self.process.wait()


def auth_main(args: argparse.Namespace) -> int:
    from sfumato.bridge.transport import local_keys

    rows = []
    with tempfile.TemporaryDirectory() as on_home, tempfile.TemporaryDirectory() as off_home, \
            tempfile.TemporaryDirectory() as ipc_home:
        os.environ["SFUMATO_CURVE"] = "off"  # clients without explicit keys: plain TCP
        on = start_daemon(Path(on_home) / "home")
        off = start_daemon(Path(off_home) / "home", "curve_on_loopback = false\n",
                           client_defaults={"curve": None})
        # an ipc socket in a folder only this user enters: no CURVE, the kernel checks access
        ipc = start_daemon(Path(ipc_home) / "home", endpoint=f"ipc://{ipc_home}/sfumato.sock")
        echoes = {"plain": BareEcho(curve=False), "curve": BareEcho(curve=True)}
        try:
            keys = local_keys(on.home)
            clients = {"on": Client(on.endpoint, timeout_s=120, curve=keys),
                       "off": Client(off.endpoint, timeout_s=120)}
            os.environ["SFUMATO_SHARED_MEMORY"] = "0"  # these behave as remote clients
            clients["frames on"] = Client(on.endpoint, timeout_s=120, curve=keys)  # the door
            os.environ["SFUMATO_LOCAL_IPC"] = "off"  # as a client on another machine would
            clients["frames tcp"] = Client(on.endpoint, timeout_s=120, curve=keys)
            del os.environ["SFUMATO_LOCAL_IPC"]
            clients["frames off"] = Client(off.endpoint, timeout_s=120)
            clients["frames ipc"] = Client(ipc.endpoint, timeout_s=120)
            del os.environ["SFUMATO_SHARED_MEMORY"]
            for size in args.sizes.split(","):
                rows.append(measure_auth(size, clients, echoes, args.repeat))
            for client in clients.values():
                client.close()
        finally:
            for echo in echoes.values():
                echo.close()
            on.stop()
            off.stop()
            ipc.stop()
    report_auth(rows, args)
    return 0


AUTH_NAMES = ("memcpy", "shm off", "shm on", "frames off", "frames on", "frames tcp",
              "frames ipc", "echo plain", "echo curve")


def measure_auth(size: str, clients: dict[str, Client], echoes: dict[str, BareEcho],
                 repeat: int) -> tuple[str, rounds.Rounds]:
    width, height = SIZES[size]
    buffer = layer_pixels(width, height, Layout.RGBA8).tobytes()
    raster = Raster(width, height, Layout.RGBA8, buffer)
    out = (ctypes.c_char * len(buffer))()
    back = (ctypes.c_char * len(buffer))()

    def two_memcpy() -> None:
        ctypes.memmove(out, buffer, len(buffer))
        ctypes.memmove(back, out, len(buffer))
        touch(back)

    for name, client in clients.items():
        if bytes(client.ping([raster])[0].data) != buffer:
            raise SystemExit("the daemon changed the pixels")
        if client.shares_memory == name.startswith("frames"):
            raise SystemExit(f"{name}: shared memory was not used where it should be "
                             "(or was where not)")

    def ping(client: Client) -> Callable[[], None]:
        return lambda: touch(client.ping([raster])[0].data)

    def echo(bare: BareEcho) -> Callable[[], None]:
        return lambda: touch(bare.round_trip(buffer))

    contenders = {"memcpy": two_memcpy, "shm off": ping(clients["off"]),
                  "shm on": ping(clients["on"]), "frames off": ping(clients["frames off"]),
                  "frames on": ping(clients["frames on"]),
                  "frames tcp": ping(clients["frames tcp"]),
                  "frames ipc": ping(clients["frames ipc"]), "echo plain": echo(echoes["plain"]),
                  "echo curve": echo(echoes["curve"])}
    return f"{size.upper()} rgba8 ({len(buffer) / 1e6:.0f} MB)", race(contenders, repeat)


def report_auth(rows: list[tuple[str, rounds.Rounds]], args: argparse.Namespace) -> None:
    print(f"What authentication costs: {args.repeat} alternating rounds, medians; ratios per "
          f"round: median (range); {platform.node()} {os.cpu_count()} cpus, python "
          f"{platform.python_version()}, load average {rounds.load_average()}")
    for label, race_ in rows:
        print(f"  {label}: " + ", ".join(f"{name} {race_.median(name) * 1e3:.1f} ms"
                                         for name in AUTH_NAMES))
        for a, b, target in (("shm on", "memcpy", 1.5), ("shm off", "memcpy", None),
                             ("shm on", "shm off", None), ("frames on", "echo plain", 1.2),
                             ("frames off", "echo plain", None),
                             ("frames tcp", "echo curve", None),
                             ("echo curve", "echo plain", None),
                             ("frames tcp", "frames off", None),
                             ("frames ipc", "echo plain", 1.2)):
            ratios = race_.ratios(a, b)
            verdict = ""
            if target is not None:
                verdict = " ok" if statistics.median(ratios) <= target else " OVER"
                verdict = f"  (target <= {target}x){verdict}"
            print(f"    {a} / {b}: {rounds.spread(ratios)}{verdict}")


if __name__ == "__main__":
    raise SystemExit(main())
