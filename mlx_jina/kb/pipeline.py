"""Small threads for overlapping the index run's stages through bounded queues.

An index run reads and chunks files (CPU in Python and the tokenizer), embeds them (the encoder:
the slow stage on a Mac) and writes them (SQLite). `ahead` runs a producer one bounded step in
front of its consumer; `Writer` drains a bounded queue of writes on its own thread, taking every
queued item at once so several batches share one transaction. The encoder stays on the caller's
thread (MLX streams belong to the thread that made them). A failure in either thread is raised
in the caller at its next interaction; a consumer that stops early stops the producer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_END = object()
_POLL_S = 0.1


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def ahead(items: Iterable[T], depth: int = 2, name: str = "mlx-jina-prepare") -> Iterator[T]:
    """Iterate `items`, produced on a background thread at most `depth` items ahead. Its thread
    closes `items` when it stops, so stacked stages (`ahead(f(ahead(g)))`) stop together."""
    q: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        source = iter(items)
        try:
            for item in source:
                if not put(item):
                    return
            put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put(_Failure(exc))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()


class Writer(Generic[T]):
    """Calls `write(list_of_items)` on its own thread for what was queued, oldest first."""

    def __init__(self, write: Callable[[list[T]], None], depth: int = 2) -> None:
        self._write = write
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="mlx-jina-write", daemon=True)
        self._thread.start()

    def put(self, item: T) -> None:
        """Queue an item (blocks while the queue is full); raises the writer's failure, if any."""
        while True:
            self._check()
            try:
                self._queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Write everything queued, stop the thread, raise its failure if it had one."""
        if self._thread.is_alive():
            while self._thread.is_alive():
                try:
                    self._queue.put(_END, timeout=_POLL_S)
                    break
                except queue.Full:
                    continue
            self._thread.join()
        self._check()

    def _check(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            while items[-1] is not _END:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            done = items[-1] is _END
            work = [item for item in items if item is not _END]
            if work and self._error is None:
                try:
                    self._write(work)  # type: ignore[arg-type]
                except BaseException as exc:  # noqa: BLE001 - raised in the caller
                    self._error = exc
            if done:
                return
