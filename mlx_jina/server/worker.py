"""The one thread that owns MLX.

Since mlx 0.31.2 streams are thread-local: arrays made on one thread (the lazily loaded weights
included) cannot be evaluated from another ("There is no Stream(gpu, 0) in current thread", see
ml-explore/mlx#3727 and mlx-lm#1181). So the model is loaded on this worker's thread and every
forward pass (and knowledge-base query, which embeds) runs there too, one at a time. Its
streams must be destroyed on that thread before it ends, or the process may abort at exit
("terminate called without an active exception", ml-explore/mlx#4327).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

import mlx.core as mx

M = TypeVar("M")
R = TypeVar("R")


class ModelWorker(Generic[M]):
    """Loads a model on a dedicated thread and runs calls on it, from sync or async code."""

    def __init__(self, load: Callable[[], M]):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlx-jina-model")
        try:
            self.model: M = self._executor.submit(load).result()
        except BaseException:
            self.close()
            raise

    def call(self, fn: Callable[..., R], *args: Any) -> R:
        """Run fn(*args) on the model thread and wait (for setup code outside the event loop)."""
        return self._executor.submit(fn, *args).result()

    async def run(self, fn: Callable[..., R], *args: Any) -> R:
        """Run fn(*args) on the model thread without blocking the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        """Finish the calls already submitted, then free MLX's streams on their own thread."""
        with contextlib.suppress(RuntimeError):  # already shut down
            self._executor.submit(mx.clear_streams)
        self._executor.shutdown(wait=True, cancel_futures=False)


def _malloc_trim() -> Callable[[int], int] | None:
    libc = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(libc), "malloc_trim", None) if libc else None  # glibc only


_TRIM = _malloc_trim()


def release_memory() -> None:
    """Give memory a large request left behind back to the OS: MLX's buffer cache, and (glibc)
    the freed heap pages of its texts and token ids. Call it on the model thread when idle."""
    gc.collect()
    mx.clear_cache()
    if _TRIM is not None:
        _TRIM(0)
