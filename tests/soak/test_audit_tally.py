"""The soak's audit count: denial lines against the decisions the stream's entries stand for."""

from __future__ import annotations

import json
from pathlib import Path

from tests.soak.audit_tally import audit_tally


def decision(outcome: str) -> str:
    """As admitd.logs writes it: compact JSON."""
    line = {"event": "decision", "decision": outcome, "path": "/app/soak/x"}
    return json.dumps(line, separators=(",", ":"))


def entry(digest: str, count: int = 1) -> dict[str, object]:
    return {"type": "entry", "digest": digest, "entry": {"count": str(count)}}


def test_every_denial_line_counts_even_on_one_path(tmp_path: Path) -> None:
    log = tmp_path / "admitd.log"
    lines = [decision("deny"), decision("allow"), "not json", decision("deny"), decision("deny")]
    log.write_text("\n".join(["admitd serving", *lines]) + "\n")
    entries: list[dict[str, object]] = [entry("a", count=2), entry("b"), {"type": "checkpoint"}]
    tally = audit_tally(log, risky_admits=1, entries=entries)
    assert (tally.required, tally.recorded, tally.duplicated) == (4, 3, 0)
    assert tally.lost == 1 and tally.unexplained == 0


def test_a_replayed_entry_is_a_duplicate_not_a_record(tmp_path: Path) -> None:
    log = tmp_path / "admitd.log"
    log.write_text(decision("deny") + "\n" + decision("deny") + "\n")
    tally = audit_tally(log, 0, [entry("a"), entry("a"), entry("b")])
    assert (tally.recorded, tally.duplicated, tally.lost) == (3, 1, 0)
