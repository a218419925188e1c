"""Redis Sentinel for real: the master SIGKILLed under load, the sentinels promote the
replica, admitd (with a `redis+sentinel://` URL) follows. Before the kill the test waits
until the replica has everything (WAIT 1), so the sessions created before the failover
exist on the new master; the old master stays down."""

from __future__ import annotations

import asyncio
import time

from tests.reliability.fault_run import Run
from tests.reliability.stack import StackSettings

__all__ = ["SENTINEL_SETTINGS", "sentinel_failover", "verify_as_configured"]

SENTINEL_SETTINGS = StackSettings(sentinel=True)


async def sentinel_failover(run: Run) -> None:
    sentinels = run.stack.sentinels
    assert sentinels is not None
    await asyncio.sleep(run.size.warm)
    await asyncio.to_thread(sentinels.wait_replicated)
    old = sentinels.master_port()
    await asyncio.to_thread(sentinels.master.kill)
    killed, run.fault_wall = time.monotonic(), time.time()
    run.fault_end = killed  # the fault does not end: recovery is admitd on the new master
    new = await asyncio.to_thread(sentinels.wait_promoted, old)
    promoted = time.monotonic() - killed
    run.facts["promoted_s"] = promoted
    run.facts["promoted_at"] = time.monotonic()
    run.notes.append(f"sentinels promoted port {new} {promoted:.1f} s after the kill")
    await asyncio.sleep(max(0.0, run.size.hold - promoted))


def verify_as_configured(run: Run) -> None:
    """`admitd audit verify --config` with the config's redis+sentinel:// URL, after the
    failover, as an operator of this deployment would run it (the figures' verify does
    the same; this keeps its exit code apart)."""
    result = run.stack.verify_audit()
    run.facts["verify_as_configured_rc"] = result.returncode
    if result.returncode != 0:
        last = (result.stdout + result.stderr).strip().splitlines()[-1:] or [""]
        run.notes.append(f"`admitd audit verify --config` fails on redis+sentinel://: {last[0]}")
