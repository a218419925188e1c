"""An unchanged attempt within a second reuses its assessment; anything that could make
the answer stricter is a miss (risk.reuse)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from admitd.core.context import RequestContext
from admitd.core.identity import User
from admitd.core.mfa_rules import MfaRules
from admitd.risk.baseline import BaselineStore
from admitd.risk.config import RiskConfig
from admitd.risk.gatherer import RiskGatherer
from admitd.risk.geo import GeoLocator
from admitd.risk.metrics import RiskMetrics
from admitd.risk.model import (
    OrgBaseline,
    RiskAssessment,
    RiskHistory,
    RiskLevel,
    Signal,
    Telemetry,
)
from admitd.risk.reputation import ReputationList
from admitd.risk.reuse import REUSE_SECONDS, RecentAssessments
from admitd.risk.state import RiskStateStore
from admitd.sessions.model import user_from_session
from tests.sessions import make_session

NOW = 1_700_000_000.0
LOW = RiskAssessment(0, RiskLevel.LOW, (), 0.0)
KNOWN = {"d:laptop-1": "1", "ip": "198.51.100.7"}  # the risk_state hash: one known device


class Baselines:
    """Stands in for BaselineStore's cache: one baseline per organisation, replaceable."""

    def __init__(self) -> None:
        self.current = OrgBaseline("acme")

    def cached(self, organisation: str) -> OrgBaseline | None:
        return self.current

    async def get(self, organisation: str) -> OrgBaseline:
        return self.current


async def invalidate(tag: str) -> None:
    return None


def gatherer(reputation: ReputationList, baselines: Baselines | None = None) -> RiskGatherer:
    return RiskGatherer(
        RiskConfig(),
        MfaRules(),
        reputation=reputation,
        geo=GeoLocator(),
        baselines=cast(BaselineStore, baselines or Baselines()),
        state=cast(RiskStateStore, cast(Any, None)),  # assess reads no history with risk_state
        metrics=RiskMetrics(CollectorRegistry()),
        invalidate_user=invalidate,
    )


def request(device: str = "laptop-1", ip: str = "198.51.100.7", **headers: str) -> RequestContext:
    return RequestContext(
        method="GET",
        scheme="https",
        host="app.example",
        path="/app",
        headers={"x-device-id": device, "user-agent": "Mozilla/5.0", **headers},
        source_address=ip,
    )


def user(roles: tuple[str, ...] = (), mfa_ago: float | None = None) -> User:
    session = make_session("s1", user_id="u", roles=roles, now=NOW, mfa_ago=mfa_ago)
    return user_from_session(session)


@pytest.fixture
def blocklist(tmp_path: Path) -> Path:
    path = tmp_path / "blocklist.txt"
    path.write_text("203.0.113.0/24\n")
    return path


async def test_an_unchanged_attempt_within_the_window_reuses_the_first_assessment(
    blocklist: Path,
) -> None:
    risk = gatherer(ReputationList([blocklist]))
    first = await risk.assess(request(), user(), NOW, KNOWN)
    again = await risk.assess(request(), user(), NOW + 0.5, KNOWN)
    assert again.assessment == first.assessment
    assert again.telemetry.at == NOW  # the first attempt's telemetry
    later = await risk.assess(request(), user(), NOW + REUSE_SECONDS + 0.1, KNOWN)
    assert later.telemetry.at == NOW + REUSE_SECONDS + 0.1  # assessed anew


async def test_a_reputation_reload_is_seen_at_once(blocklist: Path) -> None:
    reputation = ReputationList([blocklist])
    risk = gatherer(reputation)
    clean = await risk.assess(request(), user(), NOW, KNOWN)
    assert Signal.IP_REPUTATION not in clean.assessment.signals
    blocklist.write_text("203.0.113.0/24\n198.51.100.0/24\n")
    assert reputation.reload_if_changed()
    listed = await risk.assess(request(), user(), NOW + 0.1, KNOWN)
    assert Signal.IP_REPUTATION in listed.assessment.signals


async def test_a_changed_history_is_assessed_anew(blocklist: Path) -> None:
    risk = gatherer(ReputationList([blocklist]))
    known = await risk.assess(request(), user(), NOW, KNOWN)
    assert Signal.NEW_DEVICE not in known.assessment.signals
    # The device was dropped from the history (e.g. beyond max_known_devices).
    forgotten = await risk.assess(request(), user(), NOW + 0.1, {"ip": "198.51.100.7"})
    assert Signal.NEW_DEVICE in forgotten.assessment.signals


@pytest.mark.parametrize(
    ("changed", "signal"),
    [
        ({"device": "phone-9"}, Signal.NEW_DEVICE),
        ({"ip": "203.0.113.9"}, Signal.IP_REPUTATION),
        ({"x_anomaly_score": "0.99"}, Signal.ANOMALY_SCORE),
    ],
)
async def test_a_different_device_ip_or_score_is_assessed_anew(
    blocklist: Path, changed: dict[str, str], signal: Signal
) -> None:
    risk = gatherer(ReputationList([blocklist]))
    await risk.assess(request(), user(), NOW, KNOWN)
    device, ip = changed.get("device", "laptop-1"), changed.get("ip", "198.51.100.7")
    extra = {"x-anomaly-score": changed["x_anomaly_score"]} if "x_anomaly_score" in changed else {}
    other = await risk.assess(request(device, ip, **extra), user(), NOW + 0.1, KNOWN)
    assert signal in other.assessment.signals


async def test_mfa_that_went_stale_is_not_covered_by_a_reused_answer(blocklist: Path) -> None:
    risk = gatherer(ReputationList([blocklist]))
    max_age = MfaRules().default_mfa_max_age
    # Verified just under max_age ago: fresh now, stale a moment later.
    fresh = await risk.assess(request(), user(("analyst",), mfa_ago=max_age - 0.2), NOW, KNOWN)
    assert Signal.PRIVILEGED_WITHOUT_MFA not in fresh.assessment.signals
    stale_user = user(("analyst",), mfa_ago=max_age - 0.2)
    stale = await risk.assess(request(), stale_user, NOW + 0.5, KNOWN)
    assert Signal.PRIVILEGED_WITHOUT_MFA in stale.assessment.signals


async def test_a_new_baseline_is_a_miss(blocklist: Path) -> None:
    baselines = Baselines()
    risk = gatherer(ReputationList([blocklist]), baselines)
    first = await risk.assess(request(), user(), NOW, KNOWN)
    assert first.assessment.level is RiskLevel.LOW
    # The organisation now trusts only Windows devices: Mozilla/5.0 (no OS) deviates.
    baselines.current = OrgBaseline("acme", os_families=frozenset({"windows"}), threshold=0.1)
    second = await risk.assess(request(), user(), NOW + 0.1, KNOWN)
    assert Signal.BASELINE_DEVIATION in second.assessment.signals


def test_the_cache_is_bounded() -> None:
    recent = RecentAssessments(max_entries=3)
    baseline = object()
    telemetry = Telemetry("d", "ua", "192.0.2.1", None, None, NOW)
    for n in range(10):
        recent.put(("k", n), {}, baseline, (telemetry, RiskHistory(), LOW))
    assert len(recent) == 3
    assert recent.get(("k", 9), {}, baseline, NOW) is not None
    assert recent.get(("k", 0), {}, baseline, NOW) is None


def test_a_clock_that_went_back_is_a_miss() -> None:
    recent = RecentAssessments()
    baseline = object()
    telemetry = Telemetry("d", "ua", "192.0.2.1", None, None, NOW)
    recent.put(("k",), {}, baseline, (telemetry, RiskHistory(), LOW))
    assert recent.get(("k",), {}, baseline, NOW - 1) is None
