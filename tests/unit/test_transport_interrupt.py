"""Ctrl-C while a reply is being read (the CLI then cancels and reads on) must not leave the
next read starting in the middle of that reply."""

from __future__ import annotations

import pytest
import zmq
from sfumato.bridge.transport import DealerTransport

pytestmark = pytest.mark.unit


def test_an_interrupt_between_frames_leaves_the_next_reply_whole() -> None:
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealer = DealerTransport(f"tcp://127.0.0.1:{port}", context, routing_id=b"artist")
    try:
        assert dealer.send([b"hello"], timeout_s=5.0)
        assert router.poll(5000)
        identity, _ = router.recv_multipart()
        router.send_multipart([identity, b"progress", b"2", b"of 9"])
        router.send_multipart([identity, b"cancelled", b"job 1", b"done"])
        socket = dealer._require()
        real_recv = socket.recv
        calls: list[object] = []

        def interrupted(*args: object, **kwargs: object) -> object:
            frame = real_recv(*args, **kwargs)
            calls.append(frame)
            if len(calls) == 2:  # SIGINT's handler raising between the second and third
                raise KeyboardInterrupt
            return frame

        socket.recv = interrupted  # type: ignore[method-assign]
        with pytest.raises(KeyboardInterrupt):
            dealer.recv(timeout_s=5.0)
        socket.recv = real_recv  # type: ignore[method-assign]
        parts = dealer.recv(timeout_s=5.0)  # the next message, whole: not "of 9" and on
        assert parts is not None and [bytes(p) for p in parts] == [b"cancelled", b"job 1",
                                                                  b"done"]
    finally:
        dealer.close()
        router.close(linger=0)
        context.term()
