"""What one fault run measured: wrong admits, errors by status, recovery, audit loss."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tests.reliability.load import Expect, LoadResult, Outcome

__all__ = ["AuditCount", "FaultFigures", "audit_count", "figures_from_load"]


@dataclass(frozen=True, slots=True)
class AuditCount:
    """Decisions that required an entry (from admitd's decision logs and from what the
    client saw admitd answer) against the decisions the stream's entries stand for,
    compared reason by reason: an extra entry of one reason (or an event no Check made)
    cannot hide a missing one of another."""

    required: int
    recorded: int
    duplicated: int  # entries whose digest (salted plaintext) appears more than once
    lost: int = 0  # summed over reasons: required - (recorded - duplicated), when positive
    lost_by_reason: tuple[tuple[str, int], ...] = ()


@dataclass
class FaultFigures:
    fault: str
    requests: int
    wrong_admits: int
    errors: Counter[str]  # status (or client error) of requests not admitted, bar must-refuse
    recovery_s: float | None  # None: no class of must-admit request was admitted again
    settled_s: float  # fault end to the last must-admit failure sent after it
    audit: AuditCount | None = None
    chain_ok: bool | None = None
    wrong: list[Outcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def errors_text(self) -> str:
        return ", ".join(f"{k}: {v}" for k, v in sorted(self.errors.items())) or "none"


def figures_from_load(fault: str, load: LoadResult, fault_end: float) -> FaultFigures:
    outcomes = load.outcomes
    wrong = [o for o in outcomes if o.wrongly_admitted]
    errors: Counter[str] = Counter(
        _status(o) for o in outcomes if o.expect is not Expect.REFUSE and not o.admitted
    )
    if load.skipped:
        errors["not sent (client behind)"] = load.skipped
    return FaultFigures(
        fault,
        len(outcomes) + load.skipped,
        len(wrong),
        errors,
        _recovery(outcomes, fault_end),
        _settled(outcomes, fault_end),
        wrong=wrong,
    )


def _status(outcome: Outcome) -> str:
    return outcome.error or str(outcome.status)


def _recovery(outcomes: list[Outcome], fault_end: float) -> float | None:
    """The slowest request kind's first correct admit among requests sent after the fault."""
    kinds = {o.probe.kind for o in outcomes if o.expect is Expect.ADMIT}
    firsts = []
    for kind in kinds:
        done = [
            o.done
            for o in outcomes
            if o.probe.kind == kind
            and o.sent >= fault_end
            and o.admitted
            and o.expect is Expect.ADMIT
        ]
        if not done:
            return None
        firsts.append(min(done) - fault_end)
    return max(0.0, *firsts) if firsts else None


def _settled(outcomes: list[Outcome], fault_end: float) -> float:
    failed = [
        o.done
        for o in outcomes
        if o.sent >= fault_end and o.expect is Expect.ADMIT and not o.admitted
    ]
    return max(0.0, max(failed) - fault_end) if failed else 0.0


def decision_lines(log: Path) -> list[dict[str, object]]:
    lines = []
    for raw in log.read_text(errors="replace").splitlines():
        if '"event":"decision"' not in raw:
            continue
        try:
            doc = json.loads(raw)
        except ValueError:
            continue
        if isinstance(doc, dict):
            lines.append(doc)
    return lines


def audit_count(
    logs: Path | Sequence[Path],
    load: LoadResult,
    entries: list[dict[str, object]],
    *,
    since: float = 0.0,
) -> AuditCount:
    """`since` (Unix seconds): count only decisions and entries from then on (after Redis
    came back empty, what was in it before is gone with it, not lost by admitd).

    Required: each request admitd denied (its decision log line, joined on the unique path,
    or, where a SIGKILL lost the line, the client's x-admitd-reason answer), and each
    admit the upstream saw at high or critical risk (an entry of reason `allowed`).
    """
    reasons = {  # path -> reason
        str(d["path"]): str(d.get("reason", ""))
        for log in ([logs] if isinstance(logs, Path) else logs)
        for d in decision_lines(log)
        if d.get("decision") == "deny" and float(str(d.get("ts", 0))) >= since
    }
    sent_since = load.started + (since - _wall_at(load.started)) if since else 0.0
    for o in load.outcomes:
        if o.admitd_reason and not o.admitted and o.sent >= sent_since:
            reasons.setdefault(o.path, o.admitd_reason)
    required = Counter(reasons.values())
    required["allowed"] += sum(
        1
        for o in load.outcomes
        if o.admitted and o.risk_level in {"high", "critical"} and o.sent >= sent_since
    )
    rows = [e for e in entries if e.get("type") == "entry" and _entry_time(e) >= since]
    recorded, duplicated = Counter[str](), Counter[str]()
    seen: set[str] = set()
    for row in rows:
        reason, weight, digest = _reason(row), _decisions(row), str(row.get("digest"))
        recorded[reason] += weight
        if digest in seen:  # each extra copy stands for its decisions once more
            duplicated[reason] += weight
        seen.add(digest)
    lost = {
        reason: need - (recorded[reason] - duplicated[reason])
        for reason, need in required.items()
        if need > recorded[reason] - duplicated[reason]
    }
    return AuditCount(
        sum(required.values()),
        sum(recorded.values()),
        sum(duplicated.values()),
        sum(lost.values()),
        tuple(sorted(lost.items())),
    )


def _reason(row: dict[str, object]) -> str:
    entry = row.get("entry")
    return str(entry.get("reason", "")) if isinstance(entry, dict) else "(undecryptable)"


def _decisions(row: dict[str, object]) -> int:
    entry = row.get("entry")
    if not isinstance(entry, dict):
        return 1  # undecryptable, but an entry all the same (export reports it)
    return int(str(entry.get("count", "1")))


def _entry_time(row: dict[str, object]) -> float:
    entry = row.get("entry")
    if not isinstance(entry, dict) or "time" not in entry:
        return float("inf")
    return datetime.fromisoformat(str(entry["time"]).replace("Z", "+00:00")).timestamp()


def _wall_at(monotonic: float) -> float:
    return time.time() - (time.monotonic() - monotonic)
