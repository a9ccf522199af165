"""Server pieces that HTTP cannot reach on purpose: a failing forward round, callers that went
away, the error mapping for a knowledge base of another model, and what counts as loopback."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from mlx_jina.kb import ModelMismatchError
from mlx_jina.server.app import client_errors
from mlx_jina.server.batcher import MicroBatcher
from mlx_jina.server.errors import ApiError
from mlx_jina.server.security import is_loopback


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
