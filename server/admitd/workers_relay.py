"""Copy a worker's stderr to the supervisor's, whole lines only.

Workers write JSON log lines in batches larger than a pipe's atomic write (PIPE_BUF):
written straight to one shared stderr, two workers' batches could interleave inside a
line. Each worker writes to its own pipe instead, and the supervisor, the only writer of
its stderr, passes complete lines on unchanged.
"""

from __future__ import annotations

import asyncio
import os
import sys

__all__ = ["relay_lines"]

CHUNK = 64 * 1024
MAX_LINE = 1024 * 1024  # a longer "line" is passed on in pieces rather than held


async def relay_lines(source: asyncio.StreamReader, fd: int | None = None) -> None:
    """Until `source` ends: write each complete line to `fd` (default: stderr)."""
    target = sys.stderr.fileno() if fd is None else fd
    pending = b""
    while chunk := await source.read(CHUNK):
        data = pending + chunk
        cut = data.rfind(b"\n") + 1
        if cut == 0 and len(data) >= MAX_LINE:
            cut = len(data)
        pending = data[cut:]
        if cut:
            _write_all(target, data[:cut])
    if pending:
        _write_all(target, pending + b"\n")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
