"""Server pieces that HTTP cannot reach on purpose: a failing forward round, callers that went
away, the error mapping for a knowledge base of another model, and what counts as loopback."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from mlx_jina.errors import InputError, ModelMismatchError, RequestTooLarge, ServerBusy
from mlx_jina.server.app import client_errors
from mlx_jina.server.batcher import MicroBatcher
from mlx_jina.server.errors import ApiError
from mlx_jina.server.security import bearer_token, check_origin, is_loopback


def test_failing_round_fails_its_requests_and_the_loop_keeps_serving() -> None:
    calls: list[int] = []

    async def embed_round(ids: list[list[int]], tasks: list[str]) -> np.ndarray:
        calls.append(len(ids))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return np.array([[float(row[0])] for row in ids], dtype=np.float32)

    async def scenario() -> None:
        batcher = MicroBatcher(embed_round, max_batch_tokens=100, max_wait_s=0.0)
        loop = asyncio.create_task(batcher.run())
        with pytest.raises(RuntimeError, match="boom"):
            await batcher.embed([[1, 2]], ["text-matching"])
        abandoned = asyncio.create_task(batcher.embed([[9]], ["text-matching"]))
        await asyncio.sleep(0)
        abandoned.cancel()  # a caller that went away must not break the round it was in
        results = await asyncio.gather(batcher.embed([[3], [4]], ["clustering"] * 2),
                                       batcher.embed([[5]], ["retrieval.query"]))
        assert [r[:, 0].tolist() for r in results] == [[3.0, 4.0], [5.0]]
        assert not loop.done() and batcher.stats.requests >= 2
        loop.cancel()

    asyncio.run(scenario())


def test_round_respects_the_token_budget() -> None:
    sizes: list[int] = []

    async def embed_round(ids: list[list[int]], tasks: list[str]) -> np.ndarray:
        sizes.append(len(ids))
        return np.zeros((len(ids), 1), dtype=np.float32)

    async def scenario() -> None:
        batcher = MicroBatcher(embed_round, max_batch_tokens=10, max_wait_s=0.05)
        loop = asyncio.create_task(batcher.run())
        await asyncio.gather(*(batcher.embed([[0] * 5], ["text-matching"]) for _ in range(6)))
        loop.cancel()

    asyncio.run(scenario())
    assert sizes == [2, 2, 2]  # 5 + 5 tokens fill a round of 10


def test_kb_of_another_model_is_a_409() -> None:
    with pytest.raises(ApiError) as caught, client_errors(512):
        raise ModelMismatchError("indexed with another model")
    assert caught.value.status == 409 and caught.value.code == "MODEL_MISMATCH"


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.3.4.5", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("example.com", False), ("", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


class GatedRounds:
    """A fake model: records each round's rows (tagged by task) and can hold a round until released."""

    def __init__(self) -> None:
        self.rounds: list[list[tuple[str, int]]] = []
        self.started = asyncio.Event()
        self.gate: asyncio.Event | None = None

    async def __call__(self, ids: list[np.ndarray], tasks: list[str]) -> np.ndarray:
        self.rounds.append([(t, len(r)) for t, r in zip(tasks, ids)])
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0)  # a real round lets the event loop run
        return np.array([[float(len(r))] for r in ids], dtype=np.float32)


def test_budget_counts_padded_tokens_and_rows_come_back_in_order() -> None:
    fake = GatedRounds()

    async def scenario() -> np.ndarray:
        batcher = MicroBatcher(fake, max_batch_tokens=10, max_wait_s=0.0)
        loop = asyncio.create_task(batcher.run())
        out = await batcher.embed([[1], [2] * 8, [3]], ["clustering"] * 3)
        loop.cancel()
        assert batcher.stats.padded_tokens == 8 + 2 * 1 and batcher.stats.tokens == 10
        return out

    out = asyncio.run(scenario())
    assert [[n for _, n in r] for r in fake.rounds] == [[8], [1, 1]]  # 8 + 1 would pad to 16 > 10
    assert out[:, 0].tolist() == [1.0, 8.0, 1.0]  # the caller's order, not the rounds'


def test_large_request_is_split_and_a_small_one_joins_the_next_round() -> None:
    fake = GatedRounds()

    async def scenario() -> MicroBatcher:
        batcher = MicroBatcher(fake, max_batch_tokens=10, max_wait_s=0.0)
        loop = asyncio.create_task(batcher.run())
        fake.gate = asyncio.Event()
        big = asyncio.create_task(batcher.embed([[0] * 5] * 20, ["retrieval.query"] * 20))
        await fake.started.wait()  # round 1 (two big rows) is running
        small = asyncio.create_task(batcher.embed([[0] * 5], ["clustering"]))
        await asyncio.sleep(0)
        fake.gate.set()
        await small
        assert not big.done()  # the small request finished while the big one still had rows left
        await big
        loop.cancel()
        return batcher

    batcher = asyncio.run(scenario())
    assert fake.rounds[0] == [("retrieval.query", 5)] * 2
    assert ("clustering", 5) in fake.rounds[1]
    assert len(fake.rounds) == 11 and batcher.stats.split_requests == 1 and batcher.stats.requests == 2


def test_requests_take_turns_when_one_row_fills_a_round() -> None:
    fake = GatedRounds()

    async def scenario() -> None:
        batcher = MicroBatcher(fake, max_batch_tokens=4, max_wait_s=0.0)
        loop = asyncio.create_task(batcher.run())
        await asyncio.gather(batcher.embed([[0] * 4] * 3, ["clustering"] * 3),
                             batcher.embed([[0] * 4] * 3, ["retrieval.query"] * 3))
        loop.cancel()

    asyncio.run(scenario())
    assert [r[0][0] for r in fake.rounds] == ["clustering", "retrieval.query"] * 3


def test_cancelled_request_stops_after_its_running_round() -> None:
    fake = GatedRounds()

    async def scenario() -> MicroBatcher:
        batcher = MicroBatcher(fake, max_batch_tokens=10, max_wait_s=0.0)
        loop = asyncio.create_task(batcher.run())
        fake.gate = asyncio.Event()
        big = asyncio.create_task(batcher.embed([[0] * 5] * 20, ["retrieval.query"] * 20))
        await fake.started.wait()
        big.cancel()  # the client went away
        fake.gate.set()
        fake.gate = None
        assert (await batcher.embed([[0] * 2], ["clustering"]))[:, 0].tolist() == [2.0]
        loop.cancel()
        return batcher

    batcher = asyncio.run(scenario())
    big_rows = sum(t == "retrieval.query" for r in fake.rounds for t, _ in r)
    assert big_rows == 2  # only the round that was already running
    assert batcher.stats.cancelled == 1 and batcher.stats.queued_tokens == 0 and batcher.stats.queued_requests == 0


def test_queue_is_bounded_in_tokens() -> None:
    async def scenario() -> MicroBatcher:
        batcher = MicroBatcher(GatedRounds(), max_batch_tokens=10, max_wait_s=0.0, max_queued_tokens=30)
        queued = asyncio.create_task(batcher.embed([[0] * 10] * 2, ["clustering"] * 2))  # loop not running
        await asyncio.sleep(0)
        with pytest.raises(ServerBusy):
            await batcher.embed([[0] * 11], ["clustering"])  # 20 + 11 > 30
        with pytest.raises(RequestTooLarge):
            await batcher.embed([[0] * 31], ["clustering"])  # could never fit
        fits = asyncio.create_task(batcher.embed([[0] * 10], ["clustering"]))
        await asyncio.sleep(0)
        assert batcher.stats.queued_tokens == 30 and batcher.stats.rejected == 1
        loop = asyncio.create_task(batcher.run())
        await asyncio.gather(queued, fits)
        loop.cancel()
        return batcher

    assert asyncio.run(scenario()).stats.queued_tokens == 0


def test_on_idle_gets_the_padded_tokens_of_the_busy_spell() -> None:
    idle: list[int] = []

    async def on_idle(padded: int) -> None:
        idle.append(padded)

    async def scenario() -> None:
        batcher = MicroBatcher(GatedRounds(), max_batch_tokens=10, max_wait_s=0.0, on_idle=on_idle)
        loop = asyncio.create_task(batcher.run())
        await batcher.embed([[0] * 5] * 4, ["clustering"] * 4)
        while not idle:
            await asyncio.sleep(0)
        loop.cancel()

    asyncio.run(scenario())
    assert idle == [20]


@pytest.mark.parametrize("header, token", [
    ("Bearer abc", "abc"), ("bearer abc", "abc"), ("BEARER  abc ", "abc"), ("Basic abc", None), ("Bearer", None),
    ("abc", None), ("", None),
])
def test_bearer_token(header: str, token: str | None) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize("origin", ["app://obsidian.md", "http://localhost:3000", "https://notes.example"])
def test_origin_values_accepted(origin: str) -> None:
    assert check_origin(origin) == origin


@pytest.mark.parametrize("origin", ["null", "*", "obsidian.md", "http://localhost:3000/", "https://x.example/path"])
def test_origin_values_refused(origin: str) -> None:
    with pytest.raises(InputError):
        check_origin(origin)
