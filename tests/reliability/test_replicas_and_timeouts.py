"""admitd's own faults beyond one process, short, under load through the real Envoy: one
of two replicas SIGKILLed, and admitd slower than Envoy's ext_authz timeout."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.integration.redis_server import has_redis_server
from tests.pki_fixtures import PkiSet
from tests.reliability.authz_timeout import TOO_LATE
from tests.reliability.checks import assert_correct, exported_entries, fault_run
from tests.reliability.fault_run import Run
from tests.reliability.load import Expect

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.skipif(not has_redis_server(), reason="redis-server not installed"),
]


def test_one_replica_killed_the_other_serves_everything(pki: PkiSet, tmp_path: Path) -> None:
    figures, run = fault_run("replica-killed", pki, tmp_path)
    assert run.load is not None
    down_from, down_to = run.down
    during = [
        o
        for o in run.load.outcomes
        if down_from <= o.sent and o.done <= down_to and o.expect is Expect.ADMIT
    ]
    failed = [o.sent for o in during if not o.admitted]
    served = [o for o in during if o.sent > max(failed, default=down_from)]
    # After its last failure (a Check in flight on the dead replica), and before the dead
    # one was back, every must-admit request of every kind was admitted by the survivor.
    assert {o.probe.kind for o in served} == {o.probe.kind for o in during}
    assert_correct(figures)


def test_one_replica_killed_sessions_and_lockouts_stay_consistent(
    pki: PkiSet, tmp_path: Path
) -> None:
    _, run = fault_run("replica-killed", pki, tmp_path)
    # Three wrong codes sent to A, B, A lock the user out on both; after A died, B still
    # refuses the right code.
    invalid, locked = "MFA_RESULT_INVALID", "MFA_RESULT_LOCKED_OUT"
    assert run.lockout == [invalid, invalid, invalid, locked, locked]
    assert run.load is not None
    down_from, down_to = run.down
    outcomes = [o for o in run.load.outcomes if down_from <= o.sent and o.done <= down_to]
    made_on_a = [o for o in outcomes if o.probe.name == "session-made-on-a"]
    assert any(o.admitted for o in made_on_a), "B did not admit a session A created"
    revoked_on_a = [o for o in outcomes if o.probe.name == "session-revoked-on-a"]
    assert revoked_on_a and not any(o.admitted for o in revoked_on_a)


def test_one_replica_killed_one_audit_chain_from_both(pki: PkiSet, tmp_path: Path) -> None:
    figures, run = fault_run("replica-killed", pki, tmp_path)
    deciders = {
        entry["instance"]
        for entry in _entries(run)
        if str(entry["event_type"]).startswith("decision.")
    }
    assert deciders == {"admitd-0", "admitd-1"}
    assert figures.audit is not None and figures.audit.duplicated == 0, figures.audit
    assert figures.chain_ok, figures.notes


def test_one_replica_killed_every_entry_names_its_replica(pki: PkiSet, tmp_path: Path) -> None:
    _, run = fault_run("replica-killed", pki, tmp_path)
    unnamed = Counter(str(e["event_type"]) for e in _entries(run) if not e["instance"])
    assert not unnamed, unnamed


def test_one_replica_killed_loses_no_audit_entry(pki: PkiSet, tmp_path: Path) -> None:
    figures, run = fault_run("replica-killed", pki, tmp_path)
    events = Counter(str(e["event_type"]) for e in _entries(run))
    # What the admin API did: 2 sessions made and 1 revoked through A; the enrolment and
    # 5 refused codes (3 wrong, 2 during the lockout).
    assert events["session.created"] == 2, events
    assert events["session.revoked"] == 1, events
    assert events["mfa.verify.succeeded"] == 1 and events["mfa.verify.failed"] == 5, events
    assert figures.audit is not None
    assert figures.audit.lost == 0, figures.audit


def _entries(run: Run) -> list[dict[str, object]]:
    entries = [row["entry"] for row in exported_entries(run)]
    return [entry for entry in entries if isinstance(entry, dict)]


def test_admitd_slower_than_envoys_timeout_gets_envoys_503(pki: PkiSet, tmp_path: Path) -> None:
    figures, run = fault_run("authz-timeout", pki, tmp_path)
    assert run.load is not None
    slow_from, slow_to = run.slow
    # Sent once every Check took 2 x TOO_LATE, and answered before the delay ended.
    late = [o for o in run.load.outcomes if slow_from <= o.sent <= slow_to - 2 * TOO_LATE]
    assert late
    assert {o.status for o in late} == {503}
    assert not any(o.admitd_reason for o in late), "Envoy's own 503, not admitd's answer"
    assert_correct(figures)
