"""Redis at its connection limit, and a real Sentinel failover, short, under load."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from tests.integration.redis_server import has_redis_server
from tests.pki_fixtures import PkiSet
from tests.reliability.checks import (
    assert_correct,
    assert_sessions_survived,
    exported_entries,
    fault_run,
)
from tests.reliability.load import Expect
from tests.reliability.redis_nodes import has_redis_sentinel

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.skipif(not has_redis_server(), reason="redis-server not installed"),
]
needs_sentinel = pytest.mark.skipif(
    not has_redis_sentinel(), reason="redis-sentinel not installed (scripts/install-system-deps.sh)"
)


def test_redis_connection_limit_fails_closed_and_recovers(pki: PkiSet, tmp_path: Path) -> None:
    figures, run = fault_run("redis-maxclients", pki, tmp_path)
    assert run.facts["new_connection_refused"] == 1.0, "the limit was never really reached"
    assert figures.errors, "no session can be read while admitd has no connection"
    assert_correct(figures)


def test_redis_out_of_memory_fails_closed_and_loses_no_audit_entry(
    pki: PkiSet, tmp_path: Path
) -> None:
    figures, run = fault_run("redis-oom", pki, tmp_path)
    assert run.facts["oom_refused"] == 1.0, f"the limit was never really reached: {run.notes}"
    # Redis refused the audit appends (a script that writes) too: through the spool, back.
    assert run.facts["spooled"] > 0 and run.facts["replayed"] == run.facts["spooled"], run.notes
    assert_correct(figures)


def test_a_session_revoked_at_the_connection_limit_is_never_admitted_again(
    pki: PkiSet, tmp_path: Path
) -> None:
    """admitd lost its invalidation feed with its connections: a cached copy must not
    outlive the revocation, during the limit or after it."""
    figures, run = fault_run("redis-maxclients", pki, tmp_path)
    assert run.load is not None
    victim = [o for o in run.load.outcomes if o.probe.name == "session-revoked-at-limit"]
    before = [o for o in victim if o.expect is Expect.ADMIT]
    after = [o for o in victim if o.expect is Expect.REFUSE]
    assert any(o.admitted for o in before), "the victim's session never worked at all"
    assert after and not any(o.admitted for o in after)
    assert any(o.sent >= run.fault_end for o in after), "nothing tried after the limit lifted"
    assert figures.wrong_admits == 0


@needs_sentinel
def test_sentinel_failover_admitd_follows_the_new_master(pki: PkiSet, tmp_path: Path) -> None:
    figures, run = fault_run("sentinel-failover", pki, tmp_path)
    assert run.facts["promoted_s"] > 0, run.notes
    assert_correct(figures)


@needs_sentinel
def test_sentinel_failover_keeps_sessions_made_before_it(pki: PkiSet, tmp_path: Path) -> None:
    _, run = fault_run("sentinel-failover", pki, tmp_path)
    assert_sessions_survived(run)  # created (and replicated: WAIT 1) before the failover


@needs_sentinel
def test_sentinel_failover_the_audit_chain_goes_on_without_a_fork(
    pki: PkiSet, tmp_path: Path
) -> None:
    figures, run = fault_run("sentinel-failover", pki, tmp_path)
    times = [_entry_time(row) for row in exported_entries(run)]
    assert any(t < run.fault_wall for t in times) and any(t > run.fault_wall for t in times)
    # One chain from genesis, across both masters: verify walks every link and checkpoint.
    assert figures.chain_ok, figures.notes


@needs_sentinel
def test_admitd_audit_verify_reads_a_sentinel_deployment_from_its_config(
    pki: PkiSet, tmp_path: Path
) -> None:
    _, run = fault_run("sentinel-failover", pki, tmp_path)
    assert run.facts["verify_as_configured_rc"] == 0, run.notes


def _entry_time(row: dict[str, object]) -> float:
    entry = row["entry"]
    assert isinstance(entry, dict)
    return datetime.fromisoformat(str(entry["time"]).replace("Z", "+00:00")).timestamp()
