"""A program that binds the daemon's port first and keeps whatever reaches it (tests only).

Run as a script (by the test's own Python, or by another local user's system Python, which
has pyzmq but not sfumato): `python squatter.py KIND PORT SECONDS NEEDLE_HEX`, KIND one of
raw (a bare TCP listener that records every byte), plain (a ZeroMQ ROUTER without CURVE),
curve (a ROUTER with a CURVE key pair of its own, accepting any client). It prints "ready",
then, after SECONDS or once its stdin closes, one JSON line: how many frames (or bytes)
arrived and whether any held NEEDLE (a row of the artist's pixels). Standard library +
pyzmq only."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time


def squat(kind: str, port: int, seconds: float, needle: bytes) -> dict[str, object]:
    received: list[bytes] = []
    deadline = time.monotonic() + seconds
    closed = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), closed.set()), daemon=True).start()

    def going() -> bool:
        return time.monotonic() < deadline and not closed.is_set()
    if kind == "raw":
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        listener.settimeout(0.2)

        def serve(conn: socket.socket) -> None:
            conn.settimeout(0.2)
            while going():
                try:
                    data = conn.recv(1 << 20)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                received.append(data)

        print("ready", flush=True)
        while going():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()
        listener.close()
        blob = b"".join(received)
        return {"kind": kind, "received": len(blob), "pixels_seen": needle in blob}

    import zmq

    sock = zmq.Context.instance().socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    if kind == "curve":
        public, secret = zmq.curve_keypair()
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
    sock.bind(f"tcp://127.0.0.1:{port}")
    print("ready", flush=True)
    while going():
        if sock.poll(100):
            received.extend(sock.recv_multipart())
    sock.close()
    return {"kind": kind, "received": len(received),
            "pixels_seen": any(needle in frame for frame in received)}


if __name__ == "__main__":
    kind, port, seconds, needle = sys.argv[1:5]
    print(json.dumps(squat(kind, int(port), float(seconds), bytes.fromhex(needle))), flush=True)
