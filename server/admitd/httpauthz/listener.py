"""Start and stop the HTTP ext_authz listener (`http_listen`) in the running event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from admitd.errors import ConfigError
from admitd.httpauthz.config import UNIX_PREFIX
from admitd.httpauthz.connection import HttpAuthzConnection, Limits
from admitd.httpauthz.service import HttpCheckService

__all__ = ["HttpAuthzListener", "start_http_authz"]

log = logging.getLogger(__name__)

_BACKLOG = 1024  # Envoy opens a connection per Check in flight, all at once under load


class HttpAuthzListener:
    def __init__(
        self,
        server: asyncio.AbstractServer,
        connections: set[HttpAuthzConnection],
        socket_path: Path | None,
    ) -> None:
        self._server = server
        self._connections = connections
        self._socket_path = socket_path

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    async def close(self, grace: float) -> None:
        """Stop accepting; let Checks in flight finish for up to `grace` seconds (each
        answer then says `connection: close`), close idle connections, cut the rest."""
        self._server.close()
        for connection in list(self._connections):
            connection.drain()
        deadline = time.monotonic() + grace
        while self._connections and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for connection in list(self._connections):
            connection.abort()  # its Check is cancelled, and recorded as such
        await asyncio.sleep(0)  # let connection_lost run
        if self._socket_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._socket_path.unlink()


async def start_http_authz(
    address: str, service: HttpCheckService, limits: Limits | None = None
) -> HttpAuthzListener:
    """Listen on HOST:PORT or unix:///path; raises ConfigError naming `http_listen`."""
    limits = limits or Limits()
    connections: set[HttpAuthzConnection] = set()

    def connection() -> HttpAuthzConnection:
        return HttpAuthzConnection(service, limits, connections)

    loop = asyncio.get_running_loop()
    try:
        if address.startswith(UNIX_PREFIX):
            path = Path(address.removeprefix(UNIX_PREFIX))
            server = await _unix_server(loop, connection, path)
            return HttpAuthzListener(server, connections, path)
        host, _, port = address.rpartition(":")
        server = await loop.create_server(
            connection, host.strip("[]"), int(port), backlog=_BACKLOG, reuse_port=True
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {address}: {exc.strerror or exc}", key="http_listen"
        ) from None
    return HttpAuthzListener(server, connections, None)


async def _unix_server(
    loop: asyncio.AbstractEventLoop, factory: Callable[[], HttpAuthzConnection], path: Path
) -> asyncio.AbstractServer:
    """rw for owner and group only: whoever can open the socket is trusted as the edge
    (its XFCC header is believed). A stale socket from a previous run is replaced."""
    if path.is_socket():
        path.unlink()
    previous = os.umask(0o117)
    try:
        return await loop.create_unix_server(factory, str(path), backlog=_BACKLOG)
    finally:
        os.umask(previous)
