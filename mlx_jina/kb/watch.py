"""Keep the index current while files change: one incremental sync per debounced batch of events.

A sync re-checks the whole folder cheaply (unchanged size+mtime means no read), so it is correct
whatever events the OS coalesced or dropped; the database's own files are not watched.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlx_jina.kb.indexer import IndexReport
    from mlx_jina.kb.knowledge_base import KnowledgeBase


def watch(kb: KnowledgeBase, folder: str | Path, *, debounce_ms: int = 1600,
          on_report: Callable[[IndexReport], None] = lambda report: None,
          stop_event: threading.Event | None = None, **index_args: Any) -> None:
    """Index `folder` now, then after every burst of changes, until stop_event is set."""
    from watchfiles import DefaultFilter
    from watchfiles import watch as watch_changes

    own = {str(p) for p in kb.own_files()}
    sidecar = str(kb.store.sidecar_path.resolve())  # and its temporary files while it is rewritten
    base = DefaultFilter()
    on_report(kb.index(folder, **index_args))
    for _changes in watch_changes(folder, debounce=debounce_ms, stop_event=stop_event,
                                  watch_filter=lambda change, path: path not in own
                                  and not path.startswith(sidecar) and base(change, path)):
        on_report(kb.index(folder, **index_args))
