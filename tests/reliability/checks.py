"""What every short fault test asserts, and each fault's run shared by its tests."""

from __future__ import annotations

import json
from pathlib import Path

from tests.pki_fixtures import PkiSet
from tests.reliability.faults import CI, FAULTS, Run, run_fault
from tests.reliability.figures import FaultFigures

__all__ = [
    "RECOVERY_BOUND_S",
    "assert_correct",
    "assert_sessions_survived",
    "exported_entries",
    "fault_run",
]

# Generous on a loaded 2-core machine (the published target is 5 s): a correctness bound,
# that the system comes back by itself, not a speed figure.
RECOVERY_BOUND_S = 15.0


def assert_correct(figures: FaultFigures) -> None:
    """No wrong admit, back by itself, no audit entry lost or duplicated, the chain verifies."""
    assert figures.wrong_admits == 0, [(o.path, o.status, o.expect) for o in figures.wrong]
    assert figures.recovery_s is not None, f"never admitted again: {figures.errors_text()}"
    assert figures.recovery_s < RECOVERY_BOUND_S
    assert figures.audit is not None
    assert figures.audit.lost == 0, figures.audit
    assert figures.audit.duplicated == 0, figures.audit
    assert figures.chain_ok, figures.notes


def assert_sessions_survived(run: Run) -> None:
    """After a failover (`facts["promoted_at"]`), every session made before it is still
    admitted, and every revoked or forged one still refused."""
    assert run.load is not None
    promoted = run.facts["promoted_at"]
    for probe in run.sessions:
        late = [o for o in run.load.outcomes if o.probe is probe and o.sent > promoted]
        assert late, probe.name
        if probe.must_refuse:
            assert not any(o.admitted for o in late), probe.name
        else:
            assert any(o.admitted for o in late), f"{probe.name} lost in the failover"


_RUNS: dict[str, tuple[FaultFigures, Run]] = {}


def fault_run(name: str, pki: PkiSet, tmp_path: Path) -> tuple[FaultFigures, Run]:
    """Each fault runs once per session; tests that look at one property share its run."""
    if name not in _RUNS:
        _RUNS[name] = run_fault(FAULTS[name], pki, tmp_path, CI)
        print(_RUNS[name][0])
    return _RUNS[name]


def exported_entries(run: Run) -> list[dict[str, object]]:
    """The stream's entries as the run's `admitd audit export` wrote them (the stack is
    gone by the time a test looks)."""
    out = run.stack.work / "audit-export.jsonl"
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    return [row for row in rows if isinstance(row, dict) and row.get("type") == "entry"]
