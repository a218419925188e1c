"""Redis at its memory limit (`maxmemory`, `noeviction`): the operator's other way out of
memory. Redis refuses every command that may grow memory ("OOM command not allowed"): the
audit append among them (spooled, replayed once the limit is lifted), the device-risk and
last-seen writes too, while reads (sessions) still answer. Nothing may be admitted that
should not be, nothing audited may be lost. admitd itself refuses an evicting policy (see
`admitd.sessions.redis_eviction`), so this is the only memory limit it meets."""

from __future__ import annotations

import asyncio
import time

from redis import Redis
from redis.exceptions import OutOfMemoryError

from tests.reliability.fault_run import Run, note_spool_traffic

__all__ = ["oom_epilogue", "redis_out_of_memory"]

_HEADROOM = 64 * 1024  # bytes above what Redis uses when the limit is set: full at once


async def redis_out_of_memory(run: Run) -> None:
    await asyncio.sleep(run.size.warm)
    client = run.stack.redis_client()
    try:
        limit = await asyncio.to_thread(_limit_now, client)
        run.notes.append(f"maxmemory {limit // 1024} KiB (in use + 64 KiB), noeviction")
        refused = await asyncio.to_thread(_write_refused, client)
        run.facts["oom_refused"] = float(refused)
        if not refused:
            run.notes.append("a test write was NOT refused at the limit")
        await asyncio.sleep(run.size.hold)
        await asyncio.to_thread(client.config_set, "maxmemory", 0)
        run.fault_end = time.monotonic()
    finally:
        client.close()


def _limit_now(client: Redis) -> int:
    client.config_set("maxmemory-policy", "noeviction")
    used = int(client.info("memory")["used_memory"])
    # Fill the headroom so the limit is reached now, not after minutes of audit entries.
    client.config_set("maxmemory", used + _HEADROOM)
    filler = b"x" * 8192
    for n in range(64):
        try:
            client.set(f"oom-filler:{n}", filler)
        except OutOfMemoryError:  # the limit reached: what this is for
            break
    return used + _HEADROOM


def _write_refused(client: Redis) -> bool:
    try:
        client.set("oom-probe", b"x" * 65536)
    except OutOfMemoryError:  # redis-py's name for Redis's "OOM command not allowed"
        return True
    return False


def oom_epilogue(run: Run) -> None:
    """How many audited decisions went through the spool (the appends Redis refused)."""
    note_spool_traffic(run, " (appends refused)")
