"""benchmarks/search_latency.py on the tiny checkpoint, one round: the three `mlx-jina search`
subprocesses run, the through-server one really goes through `mlx-jina serve` and finds the
in-process hits (measure() refuses otherwise), and the table has a row per path."""

from __future__ import annotations

import pytest

from benchmarks import search_latency as sl
from mlx_jina.embedder import TINY_CHECKPOINT


@pytest.mark.slow
def test_a_tiny_round_measures_every_path_and_tabulates_it():
    measured = sl.measure(TINY_CHECKPOINT.resolve(), sl.DEFAULT_NOTES, sl.DEFAULT_QUERY, rounds=1)
    timings = measured.timings
    assert list(timings) == list(sl.PATHS) and all(len(t.seconds) == 1 for t in timings.values())
    assert measured.chunks > 0 and f"{measured.chunks} chunks indexed" in measured.summary()
    rows = sl.table({"tiny": timings}).splitlines()[2:]
    assert [row.split(" | ")[1] for row in rows] == list(sl.PATHS)
    assert rows[1].endswith("| 1.00x |")  # each path is compared with the through-server one
