"""The one error root: every failure sfumato raises on either side of the wire carries an
`ErrorCode` (what went wrong, for code to act on) and a message (what to do, for the artist).
Hosts decide what to show from the code, never from the text."""

from __future__ import annotations

from .protocol import ErrorCode


class SfumatoError(Exception):
    """`code` says what went wrong (hosts and callers act on it), `message` what to do."""

    def __init__(self, code: ErrorCode | str, message: str) -> None:
        super().__init__(message)
        self.code = as_error_code(code)
        self.message = message

    def __str__(self) -> str:
        return self.message  # read by people; code reads `code`


def as_error_code(code: ErrorCode | str) -> ErrorCode:
    """A wire code as an ErrorCode; one this version does not know (a newer daemon's) is
    INTERNAL, so callers always hold a member they can compare."""
    if isinstance(code, ErrorCode):
        return code
    try:
        return ErrorCode(code)
    except ValueError:
        return ErrorCode.INTERNAL
