"""Loaded (through PYTHONPATH) by a test's daemon only: a message whose id is `raise-here`
makes the decoder raise an error no code path expects, as a bug would."""

from __future__ import annotations

try:
    from sfumato.bridge import codec

    _decode = codec.decode

    def _decode_or_raise(frames, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if len(frames) > 1 and b"raise-here" in bytes(frames[1]):
            raise ZeroDivisionError("injected by the test")
        return _decode(frames, *args, **kwargs)

    codec.decode = _decode_or_raise
except ImportError:  # not the daemon's interpreter
    pass
