"""The index run's two helper threads: order kept, queues bounded, failures raised in the caller."""

from __future__ import annotations

import threading

import pytest

from mlx_jina.kb.pipeline import Writer, ahead


def test_ahead_keeps_order_and_stays_within_its_depth():
    produced = []

    def items():
        for i in range(50):
            produced.append(i)
            yield i

    seen = []
    for item in ahead(items(), depth=2):
        assert len(produced) - len(seen) <= 2 + 2  # queue + one being put + one being consumed
        seen.append(item)
    assert seen == list(range(50))


def endless(stopped: threading.Event):
    """0, 1, 2, ... until closed; `stopped` is set when it is."""
    try:
        i = 0
        while True:
            yield i
            i += 1
    finally:
        stopped.set()


def test_ahead_raises_the_producers_failure_and_stops_it_when_the_consumer_stops():
    def failing():
        yield 1
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(ahead(failing()))
    stopped = threading.Event()

    for item in ahead(endless(stopped)):
        if item == 3:
            break
    assert stopped.wait(5)


def test_stacked_stages_stop_together_when_the_consumer_stops():
    earlier = set(threading.enumerate())  # other tests' stages may still be winding down
    stopped = threading.Event()

    def doubled(items):
        for item in items:
            yield 2 * item

    middle = doubled(ahead(endless(stopped)))  # still referenced here: only an explicit close stops it
    stages = ahead(middle, name="mlx-jina-lookup")
    for item in stages:
        if item == 6:
            break
    stages.close()
    assert stopped.is_set()  # the outer stage's thread closed the middle one before it ended
    left = set(threading.enumerate()) - earlier
    assert not [t for t in left if t.name in ("mlx-jina-prepare", "mlx-jina-lookup")]


def test_writer_writes_everything_in_order_and_raises_its_failure():
    written: list[list[int]] = []
    writer = Writer(written.append)
    for i in range(100):
        writer.put(i)
    writer.close()
    assert [i for group in written for i in group] == list(range(100))

    def fail(items: list[int]) -> None:
        raise RuntimeError("database is full")

    failing = Writer(fail)
    failing.put(1)
    with pytest.raises(RuntimeError, match="database is full"):
        failing.close()
