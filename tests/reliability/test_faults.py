"""The fault matrix, short: each fault for a few seconds at ~100 req/s through the real
Envoy. Asserted: nothing admitted that must be refused, no audit entry lost or duplicated,
the chain verifies, and every kind of request is admitted again within RECOVERY_BOUND_S.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.redis_server import has_redis_server
from tests.pki_fixtures import PkiSet
from tests.reliability.checks import assert_correct, fault_run
from tests.reliability.figures import decision_lines

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.skipif(not has_redis_server(), reason="redis-server not installed"),
]


def test_redis_killed_then_restarted_empty(pki: PkiSet, tmp_path: Path) -> None:
    figures, _ = fault_run("redis-restart-empty", pki, tmp_path)
    assert_correct(figures)


def test_redis_killed_then_restarted_with_its_data(pki: PkiSet, tmp_path: Path) -> None:
    figures, _ = fault_run("redis-restart-data", pki, tmp_path)
    # A batch Redis appended just before the kill, whose reply never came, is spooled and
    # replayed: the append script refuses the digests it already holds (no duplicate).
    assert_correct(figures)
    assert figures.errors, "Redis was away: session requests cannot all have been admitted"


def test_redis_frozen_then_continued(pki: PkiSet, tmp_path: Path) -> None:
    figures, _ = fault_run("redis-freeze", pki, tmp_path)
    # The batch that timed out against the frozen Redis runs when it continues; the spool's
    # replay of it is refused by digest, so nothing is in the chain twice.
    assert_correct(figures)


def test_redis_slowed_by_a_delaying_proxy(pki: PkiSet, tmp_path: Path) -> None:
    figures, _ = fault_run("redis-slow", pki, tmp_path)
    assert_correct(figures)  # at 500 ms the timed-out batch still lands: refused on replay


def test_admitd_sigkill_envoy_answers_503_and_admits_nothing(pki: PkiSet, tmp_path: Path) -> None:
    figures, details = fault_run("admitd-sigkill", pki, tmp_path)
    down_from, down_to = details.down
    assert details.load is not None
    during = [o for o in details.load.outcomes if down_from <= o.sent and o.done <= down_to]
    assert during, "no request was sent while admitd was down"
    assert {o.status for o in during} == {503}
    assert_correct(figures)


def test_admitd_sigkill_loses_no_audit_entry(pki: PkiSet, tmp_path: Path) -> None:
    figures, _ = fault_run("admitd-sigkill", pki, tmp_path)
    assert figures.audit is not None
    assert figures.audit.lost == 0, figures.audit


def test_admitd_sigterm_drains_in_flight_checks_after_not_serving(
    pki: PkiSet, tmp_path: Path
) -> None:
    figures, details = fault_run("admitd-sigterm", pki, tmp_path)
    assert details.exit_code == 0, details.notes
    not_serving = [t for t, status in details.health if status == "NOT_SERVING"]
    assert not_serving, details.health
    assert min(not_serving) < details.exited_at
    # Every Check the terminated admitd took was answered with its own decision: none
    # failed, none was cut off (joined on each request's unique path).
    assert details.load is not None
    by_path = {o.path: o for o in details.load.outcomes}
    in_flight = []
    for line in decision_lines(details.stack.admitd_log):
        if float(str(line["ts"])) > details.exited_wall:
            break  # the restarted admitd's decisions
        outcome = by_path.get(str(line["path"]))
        if outcome is None or outcome.done < details.terminated_at:
            continue
        in_flight.append(outcome)
        assert outcome.status == line["status"], (line, outcome)
        # Only Envoy's own deadline may end one (a starved host queues Checks past their
        # 0.5 s): never the drain, which lets every Check it took finish.
        if line["reason"] == "authorization_unavailable":
            assert "Envoy" in str(line["detail"]), line
    assert in_flight, "no Check was in flight when SIGTERM came"
    assert_correct(figures)
