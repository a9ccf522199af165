"""The one thread that owns MLX.

Since mlx 0.31.2 streams are thread-local: arrays made on one thread (the lazily loaded weights
included) cannot be evaluated from another ("There is no Stream(gpu, 0) in current thread", see
ml-explore/mlx#3727 and mlx-lm#1181). So the model is loaded on this worker's thread and every
forward pass (and knowledge-base query, which embeds) runs there too, one at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

M = TypeVar("M")
R = TypeVar("R")


class ModelWorker(Generic[M]):
    """Loads a model on a dedicated thread and runs calls on it, from sync or async code."""

    def __init__(self, load: Callable[[], M]):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlx-jina-model")
        try:
            self.model: M = self._executor.submit(load).result()
        except BaseException:
            self._executor.shutdown(wait=False)
            raise

    def call(self, fn: Callable[..., R], *args: Any) -> R:
        """Run fn(*args) on the model thread and wait (for setup code outside the event loop)."""
        return self._executor.submit(fn, *args).result()

    async def run(self, fn: Callable[..., R], *args: Any) -> R:
        """Run fn(*args) on the model thread without blocking the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
