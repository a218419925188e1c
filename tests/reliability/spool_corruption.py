"""A damaged audit spool: admitd spools real entries while Redis is away and is stopped;
the test damages the spool file as a disk or a crash would, lets Redis back and starts
admitd again, and looks at what the replay did with each damaged record.

Damage of two kinds, each in a stack phase of its own (the second would break the chain
the first needs intact):
- `truncated`: a record in the middle cut short (its newline kept), and the last record
  torn (no newline: a crash in mid-write);
- `flipped`: one character of a record's ciphertext changed into another base64 one, so
  the line is still well-formed JSON.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.pki_fixtures import PkiSet
from tests.reliability.load import ProbeMix, run_load
from tests.reliability.population import Credentials
from tests.reliability.spool_fault import flood_probes, spool_digests, stream_digests
from tests.reliability.stack import ReliabilityStack, StackSettings, start_stack

__all__ = ["CorruptionPhase", "damage_flipped", "damage_truncated", "run_corruption"]

SETTINGS = StackSettings(redis_proxy=True, audit=(("coalesce_seconds", 0),))
_DENIALS, _RATE = 60, 50.0

Damage = Callable[[Path], dict[str, str]]  # spool file -> {what was done: record digest}


@dataclass(frozen=True, slots=True)
class CorruptionPhase:
    spooled: list[str]  # digests of every record admitd spooled, before the damage
    damaged: dict[str, str]  # what was done -> the damaged record's digest
    log: str  # admitd's log from its restart on
    quarantine: str  # `<spool>.corrupt` after the replay
    stream: list[str]  # the stream's digests after the replay (all phases so far)
    verified: subprocess.CompletedProcess[str]


def run_corruption(pki: PkiSet, work: Path, damages: list[Damage]) -> list[CorruptionPhase]:
    stack = start_stack(pki, work, SETTINGS)
    try:
        creds = Credentials(pki)
        return [_phase(stack, creds, damage, index) for index, damage in enumerate(damages)]
    finally:
        stack.stop()


def _phase(
    stack: ReliabilityStack, creds: Credentials, damage: Damage, index: int
) -> CorruptionPhase:
    proxy = stack.proxy
    assert proxy is not None
    proxy.cut()
    asyncio.run(
        run_load(
            f"https://localhost:{stack.https_port}",
            stack.pki.directory / "root.pem",
            ProbeMix(flood_probes(creds)),
            rate=_RATE,
            seconds=_DENIALS / _RATE,
            tag=f"phase{index}-",
        )
    )
    stack.stop_admitd()  # SIGTERM: the queue goes to the spool (Redis is away)
    spooled = spool_digests(stack.spool_file)
    assert len(spooled) >= _DENIALS, f"only {len(spooled)} records spooled"
    damaged = damage(stack.spool_file)
    log_from = stack.admitd_log.stat().st_size
    proxy.restore()
    stack.start_admitd()
    stack.wait_audit_settled()
    quarantine = stack.spool_file.with_name(stack.spool_file.name + ".corrupt")
    return CorruptionPhase(
        spooled,
        damaged,
        stack.admitd_log.read_bytes()[log_from:].decode(errors="replace"),
        quarantine.read_text(errors="replace") if quarantine.exists() else "",
        stream_digests(stack),
        stack.verify_audit(),
    )


def damage_truncated(spool: Path) -> dict[str, str]:
    """A middle record cut in half (newline kept); the last one torn (newline gone)."""
    lines = spool.read_bytes().split(b"\n")[:-1]
    middle, last = len(lines) // 2, len(lines) - 1
    damaged = {"truncated": _digest(lines[middle]), "torn": _digest(lines[last])}
    lines[middle] = lines[middle][: len(lines[middle]) // 2]
    torn = lines[last][: len(lines[last]) // 2]
    spool.write_bytes(b"".join(line + b"\n" for line in lines[:last]) + torn)
    return damaged


def damage_flipped(spool: Path) -> dict[str, str]:
    """One base64 character in the ciphertext of a middle record turned into another."""
    lines = spool.read_bytes().split(b"\n")[:-1]
    middle = len(lines) // 2
    line = lines[middle]
    start = line.index(b'ciphertext\\":\\"') + len(b'ciphertext\\":\\"')
    end = line.index(b"\\", start)
    at = (start + end) // 2
    lines[middle] = line[:at] + (b"B" if line[at : at + 1] == b"A" else b"A") + line[at + 1 :]
    spool.write_bytes(b"".join(line + b"\n" for line in lines))
    return {"flipped": _digest(line)}


def _digest(line: bytes) -> str:
    start = line.index(b'"digest":"') + 10
    return line[start : start + 64].decode()
