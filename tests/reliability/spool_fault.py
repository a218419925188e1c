"""The audit spool fault: Redis away (the hold plus 3 s) while a flood of denials fills
the spool with thousands of entries, then admitd SIGKILLed in the middle of the replay, restarted, and
the spool replayed again.

The crash lands at the worst moment on purpose: Redis has appended a replay batch (the
stream grew) but admitd has not heard back, so it has not committed the spool offset.
Redis's replies are held `REPLY_DELAY` by the proxy (below the 0.5 s socket timeout, so
the append would have succeeded) and the test watches the stream from its own
connection and kills admitd as soon as the batch lands.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.reliability.fault_run import Run
from tests.reliability.load import Probe, ProbeMix, run_load
from tests.reliability.population import Credentials
from tests.reliability.stack import STREAM, ReliabilityStack, StackSettings

__all__ = [
    "SPOOL_SETTINGS",
    "flood_probes",
    "spool_digests",
    "spool_replay_crash",
    "stream_digests",
]

# Every denial its own entry (no coalescing), replayed 16 at a time, and a small queue,
# so a flood overflows it into the spool as well.
SPOOL_SETTINGS = StackSettings(
    redis_proxy=True,
    audit=(("coalesce_seconds", 0), ("batch_max_entries", 16), ("queue_max_entries", 64)),
)
REPLY_DELAY = 0.3  # seconds Redis's replies are held while the replay starts
_LONGER = 3.0  # Redis stays away this much longer than other faults hold (a bigger spool)
_REPLAY_TIMEOUT = 20.0


def flood_probes(creds: Credentials) -> list[Probe]:
    """Cheap denials (the certificate phase refuses them; no Redis needed)."""
    return [
        Probe("flood-no-cert", "cert", "/cert/", must_refuse=True),
        Probe("flood-untrusted", "cert", "/cert/", cert=creds.untrusted, must_refuse=True),
    ]


async def spool_replay_crash(run: Run) -> None:
    stack, proxy = run.stack, run.stack.proxy
    assert proxy is not None
    await asyncio.sleep(run.size.warm)
    proxy.cut()
    cut_at, away = time.monotonic(), run.size.hold + _LONGER
    flood = run_load(
        f"https://localhost:{stack.https_port}",
        stack.pki.directory / "root.pem",
        ProbeMix(flood_probes(run.creds)),
        rate=run.size.flood,
        seconds=away,
        tag="flood-",
    )
    run.side_loads.append(await flood)
    await asyncio.sleep(max(0.0, away - (time.monotonic() - cut_at)))
    await asyncio.sleep(0.2)  # the writer's last spill (it seals and spools every 50 ms)
    run.facts["spooled"] = len(spool_digests(stack.spool_file))
    before = await asyncio.to_thread(_stream_length, stack)
    proxy.reply_delay = REPLY_DELAY
    proxy.restore()
    after = await asyncio.to_thread(_kill_when_stream_grows, stack, before)
    proxy.reply_delay = 0.0
    run.facts["replayed_before_crash"] = after - before
    run.facts["committed_before_crash"] = committed_records(stack.spool_file)
    run.spool_at_crash = spool_digests(stack.spool_file)
    run.notes.append(
        f"{run.facts['spooled']:.0f} entries spooled while Redis was away; admitd killed"
        f" with {after - before} replayed entries in Redis and"
        f" {run.facts['committed_before_crash']:.0f} committed in the spool offset"
    )
    stack.start_admitd(wait=False)
    run.fault_end = time.monotonic()


def _stream_length(stack: ReliabilityStack) -> int:
    client = stack.redis_client()
    try:
        return int(client.xlen(STREAM))
    finally:
        client.close()


def _kill_when_stream_grows(stack: ReliabilityStack, before: int) -> int:
    """SIGKILL admitd once the replay's first batch is in the stream; the stream's length
    after the kill (nothing else writes it)."""
    client = stack.redis_client()
    deadline = time.monotonic() + _REPLAY_TIMEOUT
    try:
        while int(client.xlen(STREAM)) == before:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the spool replay never reached Redis in {_REPLAY_TIMEOUT}s")
            time.sleep(0.002)
        stack.admitd.kill()
        return int(client.xlen(STREAM))
    finally:
        client.close()


def spool_digests(spool: Path) -> list[str]:
    """The digest of every record in the spool file (whole lines only)."""
    if not spool.exists():
        return []
    digests = []
    for line in spool.read_bytes().split(b"\n"):
        start = line.find(b'"digest":"')
        if start >= 0:
            digests.append(line[start + 10 : start + 74].decode())
    return digests


def committed_records(spool: Path) -> int:
    """How many spool records admitd has marked as in Redis (`<spool>.offset`)."""
    offset_file = spool.with_name(spool.name + ".offset")
    if not offset_file.exists():
        return 0
    offset = int(offset_file.read_text().strip() or "0")
    return spool.read_bytes()[:offset].count(b"\n")


def stream_digests(stack: ReliabilityStack) -> list[str]:
    """Every entry's digest, in stream order, read straight from Redis."""
    client = stack.redis_client()
    try:
        digests: list[str] = []
        start = "-"
        while batch := client.xrange(STREAM, min=start, count=1000):
            digests += [fields[b"digest"].decode() for _, fields in batch]
            start = "(" + batch[-1][0].decode()
        return digests
    finally:
        client.close()
