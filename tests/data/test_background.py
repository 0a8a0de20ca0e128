"""Read-ahead and background writes: order kept, errors raised in the caller, early stop."""

from __future__ import annotations

import threading
import time

import pytest

from embedlab.data.background import BackgroundWriter, prefetch


def test_prefetch_keeps_order_and_reads_ahead():
    produced = []

    def gen():
        for i in range(20):
            produced.append(i)
            yield i

    it = prefetch(gen(), depth=3)
    assert next(it) == 0
    time.sleep(0.2)
    assert len(produced) >= 3  # items were made before they were asked for
    assert [0, *it] == list(range(20))


def test_prefetch_raises_the_producers_error_and_stops_early():
    def failing():
        yield 1
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        list(prefetch(failing(), depth=2))
    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    it = prefetch(endless(), depth=2)
    assert [next(it) for _ in range(5)] == [0, 1, 2, 3, 4]
    it.close()  # the consumer stops: the producer thread ends and closes its iterator
    assert closed.wait(5)


class _File:
    def __init__(self, fail_at: int | None = None) -> None:
        self.data, self.fail_at = [], fail_at

    def write(self, b):  # noqa: ANN001
        if self.fail_at is not None and len(self.data) == self.fail_at:
            raise OSError("disk full")
        time.sleep(0.001)
        self.data.append(bytes(b))


def test_background_writer_keeps_order_and_reports_errors():
    a, b = _File(), _File()
    w = BackgroundWriter(max_queued=4)
    for i in range(50):
        w.write(a if i % 2 else b, bytes([i]))
    w.wait()
    assert a.data == [bytes([i]) for i in range(1, 50, 2)] and b.data == [bytes([i]) for i in range(0, 50, 2)]
    bad = _File(fail_at=3)
    with pytest.raises(OSError, match="disk full"):  # raised by a later write or by close
        for i in range(10):
            w.write(bad, bytes([i]))
        w.close()
    with pytest.raises(OSError, match="disk full"):
        w.close()  # the thread has ended; the error stays
    assert len(bad.data) == 3  # nothing written after the failure
