"""Work moved off the calling thread: read-ahead of an iterator, and ordered file writes.

Both exist so that a thread feeding a pool of parsers (or a trainer) never waits on the
disk: :func:`prefetch` runs an iterator in a thread, ``depth`` items ahead;
:class:`BackgroundWriter` performs ``file.write`` calls in one thread, in the order they were
queued. Errors raised in the background are raised again in the caller.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from queue import Empty, Full, Queue
from typing import Any, TypeVar

T = TypeVar("T")

_DONE = object()


class _Raised:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetch(items: Iterator[T], depth: int) -> Iterator[T]:
    """``items``, produced by a background thread up to ``depth`` items ahead of the consumer.

    When the consumer stops early (``close()``, an exception, garbage collection), the
    thread stops at its next item and ``items`` is closed there.
    """
    if depth <= 0:
        yield from items
        return
    queue: Queue = Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def run() -> None:
        try:
            for item in items:
                if not put(item):
                    break
        except BaseException as e:  # re-raised in the consumer
            put(_Raised(e))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
        put(_DONE)

    thread = threading.Thread(target=run, name="embedlab-prefetch", daemon=True)
    thread.start()
    try:
        while (item := queue.get()) is not _DONE:
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stop.set()
        while True:  # unblock the producer's put, then let it finish
            try:
                queue.get_nowait()
            except Empty:
                break
        thread.join()


class BackgroundWriter:
    """``write(f, data)`` queued to one thread, which writes in queue order (so each file's
    bytes land in the order they were queued). ``data`` must not change after queuing.
    :meth:`wait` blocks until everything queued is written; :meth:`close` also ends the
    thread. The first write error is raised by the next call."""

    def __init__(self, max_queued: int = 256) -> None:
        self._queue: Queue = Queue(maxsize=max_queued)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="embedlab-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self._error is None:
                    f, data = item
                    f.write(data)
            except BaseException as e:  # kept for the caller
                self._error = e
            finally:
                self._queue.task_done()

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, f: Any, data: Any) -> None:
        self._check()
        self._queue.put((f, data))

    def wait(self) -> None:
        self._queue.join()
        self._check()

    def close(self) -> None:
        """Write what is queued, end the thread, raise a pending error."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._check()
