"""Connection timeouts uvicorn lacks: it closes idle keep-alive connections, but a connection
that sends nothing, or half its headers, or half its body, stays open for ever (slowloris).
This is uvicorn's own h11 protocol with two more deadlines, given to uvicorn as `http=`."""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol


class TimedH11Protocol(H11Protocol):
    """Closes a connection that does not send a request's headers within `header_timeout_s` of
    its first byte (or of connecting), or the request's body within `body_timeout_s` of the
    headers. A request being computed has no deadline. Use `timed_protocol` to set them."""

    header_timeout_s = 10.0
    body_timeout_s = 30.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout_s)

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        super().data_received(data)
        if self.cycle is not cycle:  # a request's headers are complete
            if self.cycle.more_body:
                self._arm(self.body_timeout_s)
            else:
                self._disarm()
        elif self.cycle is None or self.cycle.response_complete:  # part of the next request's headers
            if self._deadline is None:
                self._arm(self.header_timeout_s)
        elif not self.cycle.more_body:
            self._disarm()

    def on_response_complete(self) -> None:
        self._disarm()  # uvicorn's keep-alive timer takes over until the next request's first byte
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.logger.info("closing a connection that did not send its request in time: %s", self.client)
            self.transport.close()


def timed_protocol(header_timeout_s: float, body_timeout_s: float) -> type[TimedH11Protocol]:
    """The protocol class with these deadlines, for `uvicorn.Config(http=...)`."""
    return type("TimedH11Protocol", (TimedH11Protocol,),
                {"header_timeout_s": header_timeout_s, "body_timeout_s": body_timeout_s})
