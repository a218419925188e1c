"""admitd slower than Envoy's ext_authz timeout (0.5 s): a delaying proxy between Envoy and
admitd holds each chunk first 0.1 s each way (a 0.2 s round trip: slow, still in time),
then 0.4 s (0.8 s: too late). Envoy must answer its own 503 and admit nothing."""

from __future__ import annotations

import asyncio
import time

from tests.reliability.fault_run import Run

__all__ = ["IN_TIME", "TOO_LATE", "authz_slower_than_envoy"]

IN_TIME, TOO_LATE = 0.1, 0.4  # seconds each way


async def authz_slower_than_envoy(run: Run) -> None:
    proxy = run.stack.authz_proxy
    assert proxy is not None
    await asyncio.sleep(run.size.warm)
    proxy.delay = IN_TIME
    await asyncio.sleep(run.size.hold / 3)
    proxy.delay = TOO_LATE
    slow_from = time.monotonic()
    await asyncio.sleep(run.size.hold * 2 / 3)
    proxy.delay = 0.0
    run.slow = (slow_from, time.monotonic())
    run.fault_end = time.monotonic()
