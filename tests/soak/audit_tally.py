"""Audit entries required by the soak's decisions against those in the stream.

Required: every denial in admitd's decision log (one line per decision, step-ups
included: they are denials too), plus every admit the upstream saw at high or critical
risk (counted by the client). Recorded: the decisions the stream's entries stand for
(a coalesced entry counts as many as its `count`). An entry whose digest (over the salted
plaintext) was already seen is a duplicate. Counting lines rather than joining on paths
lets the soak's paths repeat (a path per request would make every step-up answer a new
response-cache entry).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

__all__ = ["AuditTally", "audit_tally", "denials_in_log"]


@dataclass(frozen=True, slots=True)
class AuditTally:
    required: int
    recorded: int
    duplicated: int

    @property
    def lost(self) -> int:
        return max(0, self.required - (self.recorded - self.duplicated))

    @property
    def unexplained(self) -> int:
        """Entries beyond the decisions counted: an admit at high risk whose answer Envoy
        replaced by its 503 (the deadline passed) is audited, but the client never saw it."""
        return max(0, self.recorded - self.duplicated - self.required)


def denials_in_log(log: Path) -> int:
    denials = 0
    with log.open(errors="replace") as lines:
        for raw in lines:
            if '"event":"decision"' not in raw:
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            denials += isinstance(line, dict) and line.get("decision") == "deny"
    return denials


def audit_tally(log: Path, risky_admits: int, entries: list[dict[str, object]]) -> AuditTally:
    rows = [e for e in entries if e.get("type") == "entry"]
    copies = Counter(str(row.get("digest")) for row in rows)
    weight = {str(row.get("digest")): _decisions(row) for row in rows}
    duplicated = sum(weight[digest] * (n - 1) for digest, n in copies.items())
    recorded = sum(_decisions(row) for row in rows)
    return AuditTally(denials_in_log(log) + risky_admits, recorded, duplicated)


def _decisions(row: dict[str, object]) -> int:
    entry = row.get("entry")
    if not isinstance(entry, dict):
        return 1  # undecryptable, but an entry all the same (export reports it)
    return int(str(entry.get("count", "1")))
