"""Layer round trips: sfumato's client and a real daemon process, through shared memory (a
client on the daemon's machine) and through raw ZeroMQ frames (a remote client, or where
shared memory cannot be used), against two memcpy of the same bytes (the floor: the layer
out and back) and against base64-PNG-in-JSON over HTTP (how the web-UI servers move images).
All measured in this run; 4K and 8K, RGBA8 and RGBA16.

    .venv/bin/python bench/transport.py [--repeat 7] [--sizes 4k,8k] [--http-repeat 1]

The contenders run in alternating rounds (bench/rounds.py), each ratio is taken within a
round, and the table shows the median per-round ratio and its range, so one noisy sample
cannot make a verdict. Target: shared memory <= 2x the memcpy floor.
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
    args = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), PngJsonHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as home:
        daemon = start_daemon(Path(home))
        try:
            shared = Client(daemon.endpoint, timeout_s=120)
            os.environ["SFUMATO_SHARED_MEMORY"] = "0"  # this client behaves as a remote one
            framed = Client(daemon.endpoint, timeout_s=120)
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


if __name__ == "__main__":
    raise SystemExit(main())
