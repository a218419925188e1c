"""After the decision: what an attempt records, and that retrying a refusal writes nothing more."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from prometheus_client import CollectorRegistry

from admitd.core.mfa_rules import MfaRules
from admitd.risk.baseline import BaselineStore
from admitd.risk.config import RiskConfig
from admitd.risk.gatherer import RiskGatherer, RiskSighting
from admitd.risk.geo import GeoLocator
from admitd.risk.metrics import RiskMetrics
from admitd.risk.model import GeoPoint, RiskAssessment, RiskHistory, RiskLevel, Signal, Telemetry
from admitd.risk.reputation import ReputationList
from admitd.risk.state import RiskStateStore
from admitd.sessions.model import Session
from tests.sessions import make_session

NOW = 1_700_000_000.0
SYDNEY = GeoPoint(-33.8688, 151.2093, "AU")
CRITICAL = RiskAssessment(80, RiskLevel.CRITICAL, (Signal.NEW_DEVICE, Signal.IMPOSSIBLE_TRAVEL), 0)


class Recorder:
    """Stands in for RiskStateStore: remembers what it was asked to write."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool, str]] = []

    async def record(
        self, user_id: str, organisation: str, telemetry: Telemetry, assessment: RiskAssessment,
        *, admitted: bool, session_id: str = "",
    ) -> str:  # fmt: skip
        await asyncio.sleep(0)
        self.calls.append((telemetry.device_id, admitted, session_id))
        return "id"


async def invalidate(tag: str) -> None:
    return None


def gatherer(recorder: Recorder) -> RiskGatherer:
    return RiskGatherer(
        RiskConfig(),
        MfaRules(),
        reputation=ReputationList([]),
        geo=GeoLocator(),
        baselines=cast(BaselineStore, None),
        state=cast(RiskStateStore, cast(Any, recorder)),
        metrics=RiskMetrics(CollectorRegistry()),
        invalidate_user=invalidate,
    )


def session(session_id: str = "s1") -> Session:
    return make_session(session_id, user_id="u", device_id="laptop-1", now=NOW)


def sighting(device: str, at: float = NOW) -> RiskSighting:
    telemetry = Telemetry(device, "Mozilla/5.0", "198.51.100.7", SYDNEY, None, at)
    return RiskSighting(telemetry, RiskHistory(frozenset({"laptop-1"})), CRITICAL)


async def test_forty_retries_of_a_refused_attempt_record_it_once() -> None:
    recorder = Recorder()
    risk = gatherer(recorder)
    for n in range(40):
        risk.record_outcome(session(), sighting("phone-9", NOW + n), admitted=False)
    await asyncio.sleep(0.05)
    assert recorder.calls == [("phone-9", False, "s1")]


async def test_a_refused_and_an_admitted_attempt_are_recorded_apart() -> None:
    recorder = Recorder()
    risk = gatherer(recorder)
    risk.record_outcome(session(), sighting("phone-9"), admitted=False)
    risk.record_outcome(session(), sighting("phone-9"), admitted=True)
    risk.record_outcome(session("s2"), sighting("phone-9"), admitted=False)
    await asyncio.sleep(0.05)
    assert sorted(recorder.calls) == [
        ("phone-9", False, "s1"), ("phone-9", False, "s2"), ("phone-9", True, "s1"),
    ]  # fmt: skip


async def test_an_unchanged_sighting_records_nothing() -> None:
    recorder = Recorder()
    risk = gatherer(recorder)
    telemetry = Telemetry("laptop-1", "Mozilla/5.0", "198.51.100.7", SYDNEY, None, NOW)
    history = RiskHistory(frozenset({"laptop-1"}), SYDNEY, NOW - 10, "198.51.100.7")
    low = RiskAssessment(0, RiskLevel.LOW, (), 0)
    risk.record_outcome(session(), RiskSighting(telemetry, history, low), admitted=True)
    await asyncio.sleep(0.05)
    assert recorder.calls == []
