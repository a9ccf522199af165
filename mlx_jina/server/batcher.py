"""Micro-batching: concurrent requests share forward passes, and no request holds the model for long.

Requests queue up as token-id rows with one task per row. Each round takes rows from every
waiting request in turn (one row per request per pass, starting one request further along each
round) until the round's budget is full, and embeds them in one `Embedder.embed_ids` call on
the model thread: rows of different requests and tasks share padded batches, since embed_ids
picks adapters per row. The budget is
counted in padded tokens (rows x longest row), what the forward pass costs. A large request is
so split across rounds, and a small one that arrives meanwhile joins the next round instead of
waiting for the large one to finish. A request whose caller went away (cancelled) is dropped
before its next rows run. The queue is bounded in tokens: past `max_queued_tokens` new requests
are refused (`ServerBusy`), so load never turns into unbounded memory.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from mlx_jina.errors import RequestTooLarge, ServerBusy

#: Runs one round: (token-id rows, one task per row) -> raw float32 [rows, hidden], in order.
EmbedRound = Callable[[list[np.ndarray], list[str]], Awaitable[np.ndarray]]


@dataclass(eq=False)  # identity: requests are found in the queue and keyed by themselves
class _Pending:
    rows: list[np.ndarray]  # int32 token ids, longest first (similar lengths share rounds)
    order: list[int]  # rows[k] is the caller's row order[k]
    tasks: list[str]  # in the order of rows
    future: asyncio.Future[np.ndarray]
    out: np.ndarray | None = None
    next_row: int = 0  # the first row not yet given to a round
    rows_done: int = 0
    rounds: int = 0  # rounds that embedded some of its rows
    unscheduled_tokens: int = field(init=False)

    def __post_init__(self) -> None:
        self.unscheduled_tokens = sum(len(r) for r in self.rows)


@dataclass
class BatchStats:
    """Counters shown by GET /health: rounds < requests means requests were batched together."""

    requests: int = 0  # completed
    texts: int = 0
    tokens: int = 0  # real tokens embedded
    padded_tokens: int = 0  # what the rounds cost: rows x longest row, per round
    rounds: int = 0
    largest_round: int = 0  # most requests served by one round
    split_requests: int = 0  # requests whose rows ran in more than one round
    cancelled: int = 0  # requests dropped because their caller went away
    rejected: int = 0  # requests refused because the queue was full
    queued_tokens: int = 0  # token ids waiting for a round now
    queued_requests: int = 0


@dataclass
class _Round:
    picks: list[tuple[_Pending, int]] = field(default_factory=list)  # (request, index into its rows)
    longest: int = 0

    def fits(self, length: int, budget: int) -> bool:
        return not self.picks or (len(self.picks) + 1) * max(self.longest, length) <= budget

    def add(self, pending: _Pending, k: int) -> None:
        self.picks.append((pending, k))
        self.longest = max(self.longest, len(pending.rows[k]))


class MicroBatcher:
    """Coalesces concurrent `embed` calls into shared rounds; `run` is the loop that serves them.

    on_idle: awaited with the padded tokens embedded since the queue last ran empty, each time it
    runs empty again: the moment to return memory a large request left cached."""

    def __init__(self, embed_round: EmbedRound, *, max_batch_tokens: int, max_wait_s: float,
                 max_queued_tokens: int | None = None, on_idle: Callable[[int], Awaitable[object]] | None = None):
        self._embed_round = embed_round
        self._max_tokens = max_batch_tokens
        self._max_wait = max_wait_s
        self._max_queued = max_queued_tokens
        self._on_idle = on_idle
        self._pending: deque[_Pending] = deque()
        self._arrived = asyncio.Event()
        self._busy_tokens = 0  # padded tokens since the queue last ran empty
        self.stats = BatchStats()

    async def embed(self, ids: Sequence[Sequence[int]], tasks: Sequence[str]) -> np.ndarray:
        """Raw pooled float32 vectors [len(ids), hidden] for these rows, in order."""
        return await self.submit(ids, tasks)

    def submit(self, ids: Sequence[Sequence[int]], tasks: Sequence[str]) -> asyncio.Future[np.ndarray]:
        """Queue these rows (copied, as int32 arrays: the caller may drop its lists) and return the
        future of their vectors; cancel it to drop the request. Raises ServerBusy when the queue
        is full, RequestTooLarge when the request could never fit."""
        tokens = sum(len(r) for r in ids)
        if self._max_queued is not None:
            if tokens > self._max_queued:
                raise RequestTooLarge(f"the request has {tokens} tokens; this server queues at most "
                                    f"{self._max_queued}: split it into smaller requests")
            if self.stats.queued_tokens and self.stats.queued_tokens + tokens > self._max_queued:
                self.stats.rejected += 1
                raise ServerBusy(f"{self.stats.queued_tokens} tokens are queued (limit {self._max_queued})")
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        pending = _Pending([np.asarray(ids[i], dtype=np.int32) for i in order], order, [tasks[i] for i in order],
                           asyncio.get_running_loop().create_future())
        self._pending.append(pending)
        self.stats.queued_tokens += tokens
        self.stats.queued_requests += 1
        self._arrived.set()
        return pending.future

    async def run(self) -> None:
        """Serve rounds until cancelled. A failing round fails only its own requests."""
        while True:
            if not self._drop_gone():
                if self._on_idle is not None and self._busy_tokens:
                    await self._on_idle(self._busy_tokens)
                self._busy_tokens = 0
                await self._wait_for_work()
            batch = self._next_round()
            if batch.picks:
                await self._serve(batch)

    def _drop_gone(self) -> bool:
        """Forget requests whose callers went away; whether any work is left."""
        for pending in [p for p in self._pending if p.future.done()]:
            self._forget(pending)
            self.stats.cancelled += 1
        return bool(self._pending)

    def _forget(self, pending: _Pending) -> None:
        self._pending.remove(pending)
        self.stats.queued_tokens -= pending.unscheduled_tokens
        self.stats.queued_requests -= 1
        pending.unscheduled_tokens = 0

    async def _wait_for_work(self) -> None:
        """Sleep until a request arrives, then up to max_wait for others to fill the round."""
        while not self._pending:
            self._arrived.clear()
            await self._arrived.wait()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_wait
        while self.stats.queued_tokens < self._max_tokens and (remaining := deadline - loop.time()) > 0:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                break

    def _next_round(self) -> _Round:
        """Rows from each waiting request in turn while the padded budget allows."""
        batch = _Round()
        progressed = True
        while progressed:
            progressed = False
            for pending in self._pending:
                k = pending.next_row
                if k < len(pending.rows) and batch.fits(len(pending.rows[k]), self._max_tokens):
                    batch.add(pending, k)
                    pending.next_row += 1
                    pending.unscheduled_tokens -= len(pending.rows[k])
                    progressed = True
        if batch.picks:  # the next round starts one request further: a row that fills a round starves no one
            first = batch.picks[0][0]
            self._pending.remove(first)
            self._pending.append(first)
        self.stats.queued_tokens -= sum(len(p.rows[k]) for p, k in batch.picks)
        return batch

    async def _serve(self, batch: _Round) -> None:
        ids = [p.rows[k] for p, k in batch.picks]
        tasks = [p.tasks[k] for p, k in batch.picks]
        requests = list(dict.fromkeys(p for p, _ in batch.picks))
        try:
            raw = await self._embed_round(ids, tasks)
        except Exception as exc:  # noqa: BLE001 - handed to each caller, the loop keeps serving
            for p in requests:
                if p in self._pending:
                    self._forget(p)
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        for (p, k), vector in zip(batch.picks, raw):
            if p.out is None:
                p.out = np.empty((len(p.rows), raw.shape[1]), dtype=np.float32)
            p.out[p.order[k]] = vector
            p.rows_done += 1
        s = self.stats
        for p in requests:
            p.rounds += 1
            if p.rows_done == len(p.rows) and p in self._pending:
                self._pending.remove(p)
                s.queued_requests -= 1
                s.requests += 1
                s.split_requests += p.rounds > 1
                if not p.future.done() and p.out is not None:
                    p.future.set_result(p.out)
        s.rounds += 1
        s.texts += len(ids)
        s.tokens += sum(len(r) for r in ids)
        s.padded_tokens += len(ids) * batch.longest
        self._busy_tokens += len(ids) * batch.longest
        s.largest_round = max(s.largest_round, len(requests))
