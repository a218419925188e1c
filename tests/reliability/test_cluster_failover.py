"""A real Redis Cluster failover, short, under load: the master serving the audit stream's
slot SIGKILLed, its replica promoted by the cluster (one fault run shared by the tests)."""

from __future__ import annotations

import shutil
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

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.skipif(not has_redis_server(), reason="redis-server not installed"),
    pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli not installed"),
]
FAULT = "redis-cluster-failover"


def test_cluster_failover_admitd_follows_the_promoted_replica(pki: PkiSet, tmp_path: Path) -> None:
    figures, run = fault_run(FAULT, pki, tmp_path)
    assert run.facts["promoted_s"] > 0, run.notes
    assert_correct(figures)


def test_cluster_failover_keeps_sessions_made_before_it(pki: PkiSet, tmp_path: Path) -> None:
    _, run = fault_run(FAULT, pki, tmp_path)
    # Not a vacuous pass: some of them lived on the master that was killed.
    assert run.facts["sessions_on_killed_master"] >= 1, run.facts
    assert_sessions_survived(run)  # created (and replicated: WAIT on each master) before


def test_cluster_failover_audit_entries_went_through_the_spool(pki: PkiSet, tmp_path: Path) -> None:
    figures, run = fault_run(FAULT, pki, tmp_path)
    assert run.facts["checkpoints_with_stream"] == 1.0, "checkpoints on another master"
    assert run.facts["spooled"] > 0, "the stream's master was down: entries must be spooled"
    assert run.facts["replayed"] > 0, run.notes
    assert figures.audit is not None
    assert figures.audit.lost == 0, figures.audit
    assert figures.audit.duplicated == 0, figures.audit


def test_cluster_failover_the_audit_chain_goes_on_without_a_fork(
    pki: PkiSet, tmp_path: Path
) -> None:
    figures, run = fault_run(FAULT, pki, tmp_path)
    rows = exported_entries(run)
    times = [_entry_time(row) for row in rows]
    after_promotion = run.fault_wall + run.facts["promoted_s"]
    assert any(t < run.fault_wall for t in times) and any(t > after_promotion for t in times)
    seqs = [int(str(row["seq"])) for row in rows]  # stream order
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a gap or a repeated link"
    # One chain from genesis, across both masters: verify walks every link and checkpoint,
    # through the config's redis+cluster:// URL and through every seed, the dead one too.
    assert figures.chain_ok, figures.notes
    assert run.facts["verify_url_rc"] == 0, run.notes
    assert run.facts["verified_entries"] == len(rows), run.facts


def _entry_time(row: dict[str, object]) -> float:
    entry = row["entry"]
    assert isinstance(entry, dict)
    return datetime.fromisoformat(str(entry["time"]).replace("Z", "+00:00")).timestamp()
