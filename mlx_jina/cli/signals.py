"""Stopping an index run by signal: say that nothing is lost, instead of dying silently.

Every document is written in its own transaction, so a run stopped anywhere leaves each file
either fully old or fully new; the next run only does what is left. SIGTERM and SIGHUP (a closed
terminal, `kill`, a logout) are turned into an exception at the point they arrive, so the open
transaction rolls back exactly as for Ctrl-C.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import click

from mlx_jina.errors import Interrupted

SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
STOPPED = ("stopped by {name}: the index is consistent (every file is either fully indexed or as before); "
           "run the same command again to resume where it stopped")


_received: list[int] = []  # the signals that arrived: a library may re-raise ours as a plain KeyboardInterrupt


def _raise(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    raise Interrupted(signum)


@contextmanager
def interrupt_safely() -> Iterator[None]:
    """Within: SIGTERM/SIGHUP raise Interrupted; it or Ctrl-C ends the command with one line on
    stderr and exit status 128 + the signal number (the shell convention)."""
    main = threading.current_thread() is threading.main_thread()  # handlers can only be set there
    previous = {s: signal.signal(s, _raise) for s in SIGNALS} if main else {}
    _received.clear()
    try:
        yield
    except KeyboardInterrupt as exc:  # watchfiles turns any signal into a plain KeyboardInterrupt
        signum = exc.signum if isinstance(exc, Interrupted) else (_received[-1] if _received else signal.SIGINT)
        click.echo(STOPPED.format(name=signal.Signals(signum).name), err=True)
        raise SystemExit(128 + signum) from None
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
