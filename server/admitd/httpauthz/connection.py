"""One HTTP/1.1 connection from Envoy, parsed by httptools (llhttp) in a bare Protocol.

Envoy's HTTP client keeps connections alive and never pipelines; pipelined requests are
still answered in order (up to MAX_PIPELINED, then the connection is closed after the
answers owed, which HTTP/1.1 allows: the client retries the rest). Whatever cannot be
parsed, or is too large, gets a 4xx and the connection is closed; it never reaches a
Check, and never crashes the server.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import cast

import httptools

from admitd.core.context import NO_CALLER, Caller
from admitd.httpauthz.request import HttpRequest, headers_from_fields
from admitd.httpauthz.response import Reply, static_reply
from admitd.httpauthz.service import HttpCheckService

__all__ = ["HttpAuthzConnection", "Limits"]

log = logging.getLogger(__name__)

_REFUSED = {
    400: static_reply(400, (("x-admitd-reason", "request_malformed"),)).with_close(),
    413: static_reply(413, (("x-admitd-reason", "request_malformed"),)).with_close(),
    431: static_reply(431, (("x-admitd-reason", "request_malformed"),)).with_close(),
}
_LINGER = 1.0  # seconds a finished connection still reads (and drops) the client's bytes
# If the Check task itself failed (it is written not to): the answer is still a denial.
_BROKEN = static_reply(503, (("x-admitd-reason", "authorization_unavailable"),)).with_close()


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-request bounds. Header bytes count the request line's target and every name
    and value; above the Check's own limits (extauthz.request: 96 KiB, 200 headers), which
    answer such requests with a recorded 400 decision, so only runaway input stops here."""

    max_header_bytes: int = 128 * 1024
    max_headers: int = 256
    max_body_bytes: int = 1024 * 1024  # Envoy sends none unless `with_request_body`
    header_timeout: float = 10.0  # a request begun but not complete (Envoy sends one whole)
    max_pipelined: int = 16  # answers owed on one connection (in flight and queued)


class _Refuse(Exception):
    """Control flow out of a parser callback: answer `status` and close."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


class HttpAuthzConnection(asyncio.Protocol):
    def __init__(
        self, service: HttpCheckService, limits: Limits, connections: set[HttpAuthzConnection]
    ) -> None:
        self._service = service
        self._limits = limits
        self._connections = connections
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._caller = NO_CALLER
        self._queue: deque[tuple[HttpRequest, bool, bool]] = deque()  # request, HEAD, keep
        self._task: asyncio.Task[Reply] | None = None
        self._current: tuple[bool, bool] = (False, True)  # HEAD, keep-alive of the task's
        self._overflow = False
        self._draining = False
        self._timer: asyncio.TimerHandle | None = None
        self._reset_message()

    # ------------------------------------------------------------ transport events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._connections.add(self)
        if self._service.with_caller:
            self._caller = _caller_of(self._transport)

    def data_received(self, data: bytes) -> None:
        if self._overflow or self._transport is None or self._transport.is_closing():
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            refused = exc.__context__
            if not isinstance(refused, _Refuse):
                raise
            self._refuse(refused.status, str(refused))
        except httptools.HttpParserUpgrade:
            self._refuse(400, "upgrade or CONNECT")
        except httptools.HttpParserError as exc:
            self._refuse(400, f"not HTTP/1.1 ({exc})")
        else:
            self._watch_partial_request()

    def eof_received(self) -> bool:
        """The client closed its side: Envoy does that only when it stops waiting (its
        timeout passed), never to half-close a request whose answer it still wants. So
        the connection closes and a Check in flight is cancelled (and recorded)."""
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        self._queue.clear()
        self._cancel_timer()
        if self._task is not None:
            # Envoy gave up on this Check (its timeout) or went away: the task records it.
            self._task.cancel()

    # ------------------------------------------------------------ httptools callbacks

    def on_message_begin(self) -> None:
        self._reset_message()
        self._in_message = True

    def on_url(self, url: bytes) -> None:
        self._target += url
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields.append((name, value))
        if len(self._fields) > self._limits.max_headers:
            raise _Refuse(431, f"more than {self._limits.max_headers} headers")
        self._count(len(name) + len(value))

    def on_headers_complete(self) -> None:
        if self._parser.should_upgrade():
            raise _Refuse(400, "upgrade or CONNECT")

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)  # read and dropped: no rule looks at a body
        if self._body_bytes > self._limits.max_body_bytes:
            raise _Refuse(413, f"body over {self._limits.max_body_bytes} bytes")

    def on_message_complete(self) -> None:
        self._in_message = False
        self._cancel_timer()
        owed = len(self._queue) + (self._task is not None)
        if self._overflow or owed >= self._limits.max_pipelined:
            self._overflow = True  # answer what is owed, then close; the rest is dropped
            return
        method = self._parser.get_method().decode("ascii", "replace")
        headers, repeated = headers_from_fields(self._fields)
        target = self._target.decode("utf-8", "replace")
        request = HttpRequest(method, target, headers, repeated, self._caller)
        self._queue.append((request, method == "HEAD", self._parser.should_keep_alive()))
        self._reset_message()
        if self._task is None:
            self._start_next()

    # ------------------------------------------------------------ answering

    def _start_next(self) -> None:
        request, head, keep = self._queue.popleft()
        self._current = (head, keep)
        self._task = asyncio.get_running_loop().create_task(self._service.answer(request))
        self._task.add_done_callback(self._answered)

    def _answered(self, task: asyncio.Task[Reply]) -> None:
        self._task = None
        transport = self._transport
        if task.cancelled() or transport is None or transport.is_closing():
            return
        head, keep = self._current
        try:
            reply = task.result()
        except Exception:
            log.exception("HTTP Check task failed; answering 503 and closing")
            reply, keep = _BROKEN, False
        last = not keep or self._draining or (self._overflow and not self._queue)
        if last:
            reply = reply.with_close()
        transport.write(reply.head if head else reply.head + reply.body)
        if last:
            self._finish(transport)
        elif self._queue:
            self._start_next()

    def drain(self) -> None:
        """Close once the answers owed are written (shutdown); now if there are none."""
        self._draining = True
        if self._task is None and not self._queue and self._transport is not None:
            self._transport.close()

    def _finish(self, transport: asyncio.Transport) -> None:
        """End the connection after what was written: shut our side, and drop what the
        client still sends for a moment before closing, since closing with its bytes
        unread makes the kernel send a reset that can destroy our last answer."""
        self._overflow = True  # data_received drops everything from now on
        self._cancel_timer()
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self._timer = asyncio.get_running_loop().call_later(_LINGER, transport.close)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    # ------------------------------------------------------------ limits

    def _refuse(self, status: int, why: str) -> None:
        log.warning("HTTP ext_authz request refused (%d): %s", status, why)
        self._overflow = True  # nothing more is read from this connection
        if self._task is None and not self._queue and self._transport is not None:
            self._transport.write(_REFUSED[status].head)
            self._finish(self._transport)
        # Otherwise answers are still owed, in order: a refusal cannot overtake them, so
        # the last of them closes the connection and the refused request goes unanswered.

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self._limits.max_header_bytes:
            raise _Refuse(431, f"headers over {self._limits.max_header_bytes} bytes")

    def _watch_partial_request(self) -> None:
        if self._in_message and self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._limits.header_timeout, self._too_slow)

    def _too_slow(self) -> None:
        self._timer = None
        if self._transport is not None:
            log.warning(
                "HTTP ext_authz request not complete after %ss", self._limits.header_timeout
            )
            self._transport.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _reset_message(self) -> None:
        self._target = b""
        self._fields: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._body_bytes = 0
        self._in_message = False


def _caller_of(transport: asyncio.Transport) -> Caller:
    """Who connected, as the socket says (never the request): a Unix socket peer, or the
    TCP peer's address (the listener is plaintext, so there is no certificate)."""
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return Caller("tcp", str(peer[0]))
    return Caller("unix")
