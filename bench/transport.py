"""One 4K RGBA8 layer round trip: sfumato's client and daemon against two memcpy, a bare
pyzmq echo, and base64-PNG-in-JSON over HTTP (how the web-UI servers move images), all
measured in this run and printed as ratios.

    .venv/bin/python bench/transport.py [--repeat 10]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import zmq
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sfumato.bridge.client import Client  # noqa: E402
from sfumato.bridge.raster import Layout, Raster  # noqa: E402

from tests.daemon_process import free_endpoint, start_daemon  # noqa: E402

WIDTH, HEIGHT = 3840, 2160


def layer_pixels() -> np.ndarray:
    """A photo, not noise or flat colour, so PNG costs what it costs on real layers."""
    photo = Image.open(ROOT / "tests" / "data" / "photo.png").convert("RGBA")
    return np.asarray(photo.resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)).copy()


def timed(fn, repeat: int) -> float:
    fn()  # warm up: connections, page faults
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def bare_echo_server(endpoint: str) -> None:
    sock = zmq.Context.instance().socket(zmq.ROUTER)
    sock.bind(endpoint)
    while True:
        parts = sock.recv_multipart(copy=False)
        sock.send_multipart(parts, copy=False)


class PngJsonHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        image = Image.open(io.BytesIO(base64.b64decode(body["image"])))
        image.load()
        out = io.BytesIO()
        image.save(out, format="PNG")
        reply = json.dumps({"image": base64.b64encode(out.getvalue()).decode()}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    pixels = layer_pixels()
    buffer = pixels.tobytes()

    def two_memcpy() -> None:
        first = bytearray(buffer)
        bytearray(first)

    memcpy_s = timed(two_memcpy, args.repeat)

    endpoint = free_endpoint()
    echo = multiprocessing.get_context("spawn").Process(target=bare_echo_server,
                                                         args=(endpoint,), daemon=True)
    echo.start()
    dealer = zmq.Context.instance().socket(zmq.DEALER)
    dealer.connect(endpoint)

    def bare_echo() -> None:
        dealer.send(buffer, copy=False)
        dealer.recv(copy=False)

    bare_s = timed(bare_echo, args.repeat)
    dealer.close(linger=0)
    echo.terminate()

    with tempfile.TemporaryDirectory() as home:
        daemon = start_daemon(Path(home))
        try:
            raster = Raster(WIDTH, HEIGHT, Layout.RGBA8, buffer)
            with Client(daemon.endpoint, timeout_s=30) as client:
                echoed = client.ping([raster])
                if bytes(echoed[0].data) != buffer:
                    raise SystemExit("the daemon changed the pixels")
                sfumato_s = timed(lambda: client.ping([raster]), args.repeat)
        finally:
            daemon.stop()

    server = ThreadingHTTPServer(("127.0.0.1", 0), PngJsonHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"

    def http_png() -> None:
        png = io.BytesIO()
        Image.fromarray(pixels).save(png, format="PNG")
        body = json.dumps({"image": base64.b64encode(png.getvalue()).decode()}).encode()
        request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request) as response:
            reply = json.loads(response.read())
        np.asarray(Image.open(io.BytesIO(base64.b64decode(reply["image"]))))

    http_s = timed(http_png, max(1, args.repeat // 5))
    server.shutdown()

    print(f"4K RGBA8 layer ({len(buffer) / 1e6:.1f} MB), median of {args.repeat} round trips")
    print(f"  two memcpy                     {memcpy_s * 1e3:8.1f} ms")
    print(f"  bare pyzmq echo (TCP loopback) {bare_s * 1e3:8.1f} ms")
    print(f"  sfumato client -> daemon       {sfumato_s * 1e3:8.1f} ms")
    print(f"  base64 PNG in JSON over HTTP   {http_s * 1e3:8.1f} ms")
    print(f"sfumato / two memcpy:      {sfumato_s / memcpy_s:6.2f}x")
    print(f"sfumato / bare pyzmq echo: {sfumato_s / bare_s:6.2f}x   (target <= 1.2x)")
    print(f"HTTP+PNG / sfumato:        {http_s / sfumato_s:6.1f}x   (target >= 100x)")


if __name__ == "__main__":
    main()
