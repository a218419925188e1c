"""The HTTP benchmark floor: a minimal always-allow server for Envoy's HTTP ext_authz.

Envoy's `http_service` sends the original request's method, path and headers to the
authorization server and admits on a 200. This server answers every request with an
empty 200 straight from the parser callback: no per-request task, no routing, no
decision, so Envoy + this server is the best an HTTP ext_authz server in Python on
asyncio can do here, as bench/floor_server.py is for grpc.aio.

It runs on uvloop when installed and parses with httptools (llhttp, the parser uvicorn
uses) in a bare asyncio Protocol: measured against uvicorn with httptools (about 3x
the CPU per request), granian (its own Rust runtime and worker model, about 2x) and a
pure-Python parser (about 1.5x), see docs/http-authz.md.

    python bench/http_floor_server.py --port 9003
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import cast

import httptools

__all__ = ["AlwaysAllow", "serve"]

_OK = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
_BAD = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class AlwaysAllow(asyncio.Protocol):
    """One keep-alive connection from Envoy; responses go out in request order."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            self._reply(_BAD, close=True)

    # httptools callback (the request is complete; its headers are not even read)
    def on_message_complete(self) -> None:
        self._reply(_OK, close=not self._parser.should_keep_alive())

    def _reply(self, data: bytes, *, close: bool) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        self._transport.write(data)
        if close:
            self._transport.close()


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(AlwaysAllow, host, port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="always-allow HTTP ext_authz server (floor)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.host, args.port))
    else:
        uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
