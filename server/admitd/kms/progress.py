"""A plain-text progress line on stderr for long key operations."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from admitd.envelope.records import ReencryptReport

__all__ = ["ProgressBar"]

_WIDTH = 30


class ProgressBar:
    """Redraws one line on a terminal; elsewhere prints a line at most every `interval`."""

    def __init__(
        self,
        total: int,
        *,
        stream: TextIO | None = None,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._total, self._interval, self._clock = max(total, 1), interval, clock
        # Resolved at call time, so a redirected sys.stderr is honoured.
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty()
        self._last = -interval

    def __call__(self, report: ReencryptReport) -> None:
        now = self._clock()
        if self._tty or now - self._last >= self._interval:
            self._last = now
            self._draw(report, final=False)

    def finish(self, report: ReencryptReport) -> None:
        self._draw(report, final=True)

    def _draw(self, report: ReencryptReport, *, final: bool) -> None:
        # SCAN has no total; the key count at start is an estimate, hence the cap,
        # and a finished walk is 100% whatever the estimate said.
        share = 1.0 if final else min(report.scanned_keys / self._total, 1.0)
        filled = int(share * _WIDTH)
        bar = "#" * filled + "." * (_WIDTH - filled)
        line = (
            f"reencrypt {report.alias} -> v{report.target_version} [{bar}] {share:4.0%}"
            f" {report.scanned_keys}/{self._total} keys, {report.rewrapped} re-wrapped"
        )
        # On a terminal the line is redrawn in place; in a log, one line per update.
        ending = "\n" if final or not self._tty else ""
        self._stream.write(("\r" if self._tty else "") + line + ending)
        self._stream.flush()
