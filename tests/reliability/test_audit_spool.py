"""The audit spool under faults, short: thousands of entries spooled while Redis is away,
admitd SIGKILLed in the middle of the replay and replayed again; and a damaged spool file.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.integration.redis_server import has_redis_server
from tests.pki_fixtures import PkiSet
from tests.reliability.checks import assert_correct, exported_entries, fault_run
from tests.reliability.spool_corruption import (
    CorruptionPhase,
    damage_flipped,
    damage_truncated,
    run_corruption,
)

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.skipif(not has_redis_server(), reason="redis-server not installed"),
]

SPOOLED_AT_LEAST = 1500  # the CI flood (400 denials/s for 6 s) spools about 2,500


def test_spool_replay_crash_admits_nothing_and_the_chain_verifies(
    pki: PkiSet, tmp_path: Path
) -> None:
    figures, run = fault_run("audit-spool-crash", pki, tmp_path)
    assert run.facts["spooled"] >= SPOOLED_AT_LEAST, run.notes
    # The crash landed where it hurts: a replay batch in Redis, its offset not committed.
    assert run.facts["replayed_before_crash"] > run.facts["committed_before_crash"], run.notes
    assert_correct(figures)


def test_spool_replay_crash_replays_every_spooled_entry_exactly_once(
    pki: PkiSet, tmp_path: Path
) -> None:
    figures, run = fault_run("audit-spool-crash", pki, tmp_path)
    copies = Counter(str(row["digest"]) for row in exported_entries(run))
    missing = [d for d in run.spool_at_crash if copies[d] == 0]
    twice = [d for d in run.spool_at_crash if copies[d] > 1]
    assert run.spool_at_crash
    assert not missing, f"{len(missing)} of {len(run.spool_at_crash)} spooled entries lost"
    assert not twice, f"{len(twice)} spooled entries written twice"
    assert figures.audit is not None and figures.audit.duplicated == 0, figures.audit


def test_spool_replay_crash_loses_no_decision(pki: PkiSet, tmp_path: Path) -> None:
    figures, _ = fault_run("audit-spool-crash", pki, tmp_path)
    assert figures.audit is not None
    assert figures.audit.lost == 0, figures.audit


_PHASES: list[CorruptionPhase] = []


def corruption(pki: PkiSet, tmp_path: Path) -> list[CorruptionPhase]:
    if not _PHASES:
        _PHASES.extend(run_corruption(pki, tmp_path, [damage_truncated, damage_flipped]))
    return _PHASES


def test_a_truncated_or_torn_spool_record_is_quarantined_and_reported(
    pki: PkiSet, tmp_path: Path
) -> None:
    phase = corruption(pki, tmp_path)[0]
    truncated, torn = phase.damaged["truncated"], phase.damaged["torn"]
    assert truncated not in phase.stream and torn not in phase.stream
    assert truncated in phase.quarantine and torn in phase.quarantine
    assert '"level":"error"' in phase.log
    assert "unreadable record at byte" in phase.log
    assert "torn record at byte" in phase.log
    intact = [d for d in phase.spooled if d not in (truncated, torn)]
    assert all(phase.stream.count(d) == 1 for d in intact), "an intact record lost or doubled"
    assert phase.verified.returncode == 0, phase.verified.stdout + phase.verified.stderr


def test_a_flipped_byte_in_a_spool_record_is_not_replayed_silently(
    pki: PkiSet, tmp_path: Path
) -> None:
    phase = corruption(pki, tmp_path)[1]
    flipped = phase.damaged["flipped"]
    assert flipped not in phase.stream, "the damaged record was replayed into the chain"
    assert flipped in phase.quarantine
    assert "unauthentic record at byte" in phase.log and "TamperedEnvelope" in phase.log
    intact = [d for d in phase.spooled if d != flipped]
    assert all(phase.stream.count(d) == 1 for d in intact), "an intact record lost or doubled"
    assert phase.verified.returncode == 0, phase.verified.stdout + phase.verified.stderr
