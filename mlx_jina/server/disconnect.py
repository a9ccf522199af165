"""Stop work for clients that went away: a request waiting on the model is cancelled when its
client disconnects, so its remaining rows never run (the batcher drops cancelled requests)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request
from starlette.types import Receive

from mlx_jina.errors import ClientGone

T = TypeVar("T")


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await `work` (after the body was read); cancel it and raise ClientGone if the client
    disconnects first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request.receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
    if not task.done() or task.cancelled():  # cancelled just now, or by the batcher's shutdown
        raise ClientGone(f"{request.method} {request.url.path}: the client disconnected")
    return task.result()
