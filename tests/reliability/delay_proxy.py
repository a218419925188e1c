"""A TCP proxy in front of Redis (or admitd) that can hold every chunk for a set delay, or
cut the link altogether (asyncio, in a thread of its own, on loopback only)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine

__all__ = ["DelayProxy"]


class DelayProxy:
    """`delay` seconds (settable while running) are added to each chunk in each direction,
    in order, and `reply_delay` more to each chunk coming back from the target; 0 passes
    traffic straight through. `cut()` closes every connection and stops listening (a
    client then sees its connections reset and new ones refused); `restore()` listens
    again on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.delay = 0.0
        self.reply_delay = 0.0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> DelayProxy:
        self._thread.start()
        self.port = self._call(self._listen(0))
        return self

    def cut(self) -> None:
        self._call(self._close())

    def restore(self) -> None:
        self._call(self._listen(self.port))

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def _call(self, work: Coroutine[object, object, int]) -> int:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout=10)

    async def _listen(self, port: int) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", port)
        return int(self._server.sockets[0].getsockname()[1])

    async def _close(self) -> int:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        # Also the sides of connections whose task never got to run.
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()
        await asyncio.sleep(0)  # transports close on the next turn of the loop
        return 0

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback: the writer is known to _close() even before the task runs.
        self._writers.add(writer)
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sides = [writer]
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
            sides.append(upstream_writer)
            self._writers.add(upstream_writer)
            await asyncio.gather(
                self._pipe(reader, upstream_writer, reply=False),
                self._pipe(upstream_reader, writer, reply=True),
            )
        except (OSError, asyncio.CancelledError):
            pass  # the target refused, or cut()/stop(): this connection simply ends
        finally:
            for side in sides:
                side.close()
                self._writers.discard(side)
                with contextlib.suppress(OSError):
                    await side.wait_closed()

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, reply: bool
    ) -> None:
        # Chunks queue with the time they may leave, so a delay holds each chunk, not the
        # whole connection: pipelined commands are all delayed by the same amount.
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        forward = asyncio.create_task(self._forward(queue, sink))
        try:
            while chunk := await source.read(65536):
                queue.put_nowait((loop.time() + self._delay(reply), chunk))
            queue.put_nowait((loop.time() + self._delay(reply), b""))
            await forward
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            forward.cancel()
            with contextlib.suppress(BaseException):
                await forward
            sink.close()

    def _delay(self, reply: bool) -> float:
        return self.delay + (self.reply_delay if reply else 0.0)

    async def _forward(
        self, queue: asyncio.Queue[tuple[float, bytes]], sink: asyncio.StreamWriter
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, chunk = await queue.get()
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            if not chunk:
                return
            sink.write(chunk)
            await sink.drain()
