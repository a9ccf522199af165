"""Micro-batching: concurrent requests share forward passes.

Requests queue up as token-id rows with one task per row. A single loop takes the head of the
queue plus whatever else is waiting (and what arrives within `max_wait_s`) up to a token budget,
and embeds all those rows in one `Embedder.embed_ids` call on the model thread: rows of different
requests and tasks share padded batches, since embed_ids picks adapters per row. While a round
runs, new requests pile up and form the next one, so load turns into bigger batches, not a
longer line of one-text passes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

#: Runs one round: (token-id rows, one task per row) -> raw float32 [rows, hidden], in order.
EmbedRound = Callable[[list[list[int]], list[str]], Awaitable[np.ndarray]]


@dataclass
class _Pending:
    ids: Sequence[Sequence[int]]
    tasks: Sequence[str]
    future: asyncio.Future[np.ndarray]
    tokens: int = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = sum(len(row) for row in self.ids)


@dataclass
class BatchStats:
    """Counters shown by GET /health: rounds < requests means requests were batched together."""

    requests: int = 0
    texts: int = 0
    tokens: int = 0
    rounds: int = 0
    largest_round: int = 0  # most requests served by one round


class MicroBatcher:
    """Coalesces concurrent `embed` calls into shared rounds; `run` is the loop that serves them."""

    def __init__(self, embed_round: EmbedRound, *, max_batch_tokens: int, max_wait_s: float):
        self._embed_round = embed_round
        self._max_tokens = max_batch_tokens
        self._max_wait = max_wait_s
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self.stats = BatchStats()

    async def embed(self, ids: Sequence[Sequence[int]], tasks: Sequence[str]) -> np.ndarray:
        """Raw pooled float32 vectors [len(ids), hidden] for these rows, in order."""
        pending = _Pending(ids, tasks, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(pending)
        return await pending.future

    async def run(self) -> None:
        """Serve rounds until cancelled. A failing round fails only its own requests."""
        while True:
            batch = await self._collect()
            await self._serve(batch)

    async def _collect(self) -> list[_Pending]:
        batch = [await self._queue.get()]
        tokens = batch[0].tokens
        deadline = asyncio.get_running_loop().time() + self._max_wait
        while tokens < self._max_tokens:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            batch.append(item)
            tokens += item.tokens
        return batch

    async def _serve(self, batch: list[_Pending]) -> None:
        batch = [p for p in batch if not p.future.done()]  # their callers went away
        if not batch:
            return
        ids = [list(row) for p in batch for row in p.ids]
        tasks = [t for p in batch for t in p.tasks]
        try:
            raw = await self._embed_round(ids, tasks)
        except Exception as exc:  # noqa: BLE001 - handed to each caller, the loop keeps serving
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        start = 0
        for p in batch:
            if not p.future.done():
                p.future.set_result(raw[start : start + len(p.ids)])
            start += len(p.ids)
        s = self.stats
        s.rounds += 1
        s.requests += len(batch)
        s.texts += len(ids)
        s.tokens += sum(p.tokens for p in batch)
        s.largest_round = max(s.largest_round, len(batch))
