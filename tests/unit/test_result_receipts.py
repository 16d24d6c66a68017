"""A kept result is dropped only once its own client has let go of every file it came in."""

from __future__ import annotations

import pytest
from sfumato.core.daemon import result_receipts
from sfumato.core.daemon.result_receipts import ResultReceipts

pytestmark = pytest.mark.unit


def test_a_result_is_read_once_its_owner_released_all_its_files() -> None:
    receipts = ResultReceipts()
    receipts.sent("job-1", b"alice", ["t1", "t2"])
    assert receipts.released(b"alice", ["t1"]) == []
    assert receipts.released(b"alice", ["t2", "unknown"]) == ["job-1"]
    assert receipts.released(b"alice", ["t2"]) == []  # once only


def test_another_clients_tokens_count_for_nothing() -> None:
    receipts = ResultReceipts()
    receipts.sent("job-1", b"alice", ["t1"])
    assert receipts.released(b"mallory", ["t1"]) == []
    assert receipts.released(b"alice", ["t1"]) == ["job-1"]


def test_results_sent_as_frames_wait_for_no_receipt() -> None:
    receipts = ResultReceipts()
    receipts.sent("job-1", b"alice", [])
    assert receipts.released(b"alice", []) == []


def test_tracking_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(result_receipts, "MAX_TRACKED", 3)
    receipts = ResultReceipts()
    for n in range(5):
        receipts.sent(f"job-{n}", b"alice", [f"t{n}"])
    assert receipts.released(b"alice", ["t0", "t1"]) == []  # forgotten: kept until expiry
    assert receipts.released(b"alice", ["t4"]) == ["job-4"]
