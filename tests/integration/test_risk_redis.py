"""Risk state, baselines and dual-control overrides against a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from admitd.envelope import Context, RecordType, Sealer, envelope_from_json
from admitd.errors import StoreUnavailable
from admitd.kms import DEFAULT_ALIASES, MemoryKms
from admitd.risk.baseline import BaselineStore
from admitd.risk.config import RiskConfig
from admitd.risk.engine import assess
from admitd.risk.errors import OverrideNotFound, PreconditionFailed, SameApprover
from admitd.risk.model import (
    BaselineAttribute,
    DeviceTraits,
    GeoPoint,
    OrgBaseline,
    RiskAssessment,
    RiskLevel,
    Signal,
    Telemetry,
)
from admitd.risk.overrides import OverrideKind, OverrideRequest, OverrideStatus
from admitd.risk.state import (
    RiskStateStore,
    risk_history_from_fields,
    risk_state_key,
    telemetry_key,
)
from admitd.sessions.redis_client import client_from_url
from admitd.sessions.tokens import user_tag
from tests.integration.redis_server import RedisServer, has_redis_server

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not has_redis_server(), reason="redis-server not installed"),
]

PARIS = GeoPoint(48.8566, 2.3522, "FR")
SYDNEY = GeoPoint(-33.8688, 151.2093, "AU")
NOW = 1_700_000_000.0
ALICE, BOB, CAROL = "spiffe://t/alice", "spiffe://t/bob", "spiffe://t/carol"
LOW = RiskAssessment(0, RiskLevel.LOW, (), 0.0)


class Audit:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, str]]] = []

    def record(self, event_type: str, fields: dict[str, str]) -> None:
        self.events.append((event_type, fields))

    @property
    def types(self) -> list[str]:
        return [event for event, _ in self.events]


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[redis.Redis]:
    redis_server.start()
    client = client_from_url(redis_server.url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
def sealer() -> Sealer:
    return Sealer(MemoryKms.with_aliases(DEFAULT_ALIASES))


@pytest.fixture
def state(client: redis.Redis, sealer: Sealer) -> RiskStateStore:
    return RiskStateStore(client, sealer, retention_seconds=3600, max_known_devices=2)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def audit() -> Audit:
    return Audit()


@pytest.fixture
def baselines(
    client: redis.Redis, state: RiskStateStore, audit: Audit, clock: Clock
) -> BaselineStore:
    return BaselineStore(
        client, state, audit, default_threshold=0.5, override_ttl_seconds=600, clock=clock
    )


def seen(device: str, geo: GeoPoint | None, at: float, ip: str = "192.0.2.1") -> Telemetry:
    return Telemetry(
        device, "Mozilla/5.0", ip, geo, None, at, True, DeviceTraits("macos", "safari")
    )


async def history_via_pipeline(client: redis.Redis, user: str):  # type: ignore[no-untyped-def]
    """What the Check path does: the risk hash read in the same pipeline as the session."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(f"admitd:{{{user_tag(user)}}}:session:whatever")
        pipe.hgetall(risk_state_key(user_tag(user)))
        _, fields = await pipe.execute()
    return risk_history_from_fields(fields)


async def test_geo_velocity_across_two_assessments(
    client: redis.Redis, state: RiskStateStore
) -> None:
    config = RiskConfig()

    async def attempt(telemetry: Telemetry) -> RiskAssessment:
        history = await history_via_pipeline(client, "u-1")
        result = assess(
            telemetry, history, OrgBaseline("acme"), privileged=False, mfa_fresh=True,
            reputation_hit=False, config=config,
        )  # fmt: skip
        await state.record("u-1", "acme", telemetry, result, admitted=True)
        return result

    first = await attempt(seen("dev-1", PARIS, NOW))
    assert first.signals == (Signal.NEW_DEVICE,)
    second = await attempt(seen("dev-1", SYDNEY, NOW + 1800, ip="198.51.100.1"))
    assert second.signals == (Signal.IMPOSSIBLE_TRAVEL,)
    assert second.level is RiskLevel.HIGH
    # A day later the same trip is plausible.
    third = await attempt(seen("dev-1", PARIS, NOW + 1800 + 86_400))
    assert third.signals == ()


async def test_record_writes_state_and_sealed_telemetry_with_retention(
    client: redis.Redis, state: RiskStateStore, sealer: Sealer
) -> None:
    assessment = RiskAssessment(20, RiskLevel.MEDIUM, (Signal.NEW_DEVICE,), 0.0)
    record_id = await state.record(
        "u-2", "acme", seen("dev-1", PARIS, NOW), assessment, admitted=True
    )
    tag = user_tag("u-2")
    history = await state.history("u-2")
    assert (history.known_devices, history.last_geo, history.last_seen_at, history.last_ip) == (
        frozenset({"dev-1"}), GeoPoint(48.8566, 2.3522, "FR"), NOW, "192.0.2.1",
    )  # fmt: skip
    raw = await client.get(telemetry_key(tag, record_id))
    assert raw is not None and "Mozilla" not in raw and "192.0.2.1" not in raw  # sealed
    assert 3500 < await client.ttl(telemetry_key(tag, record_id)) <= 3600
    assert 3500 < await client.ttl(risk_state_key(tag)) <= 3600
    context = Context(RecordType.DEVICE_TELEMETRY, record_id, "acme", (("user", "u-2"),))
    plain = await sealer.open(envelope_from_json(raw), context)
    assert b'"signals":["new_device"]' in plain and b'"device_id":"dev-1"' in plain


async def test_unknown_location_keeps_the_last_known_one(state: RiskStateStore) -> None:
    await state.record("u-3", "acme", seen("dev-1", PARIS, NOW), LOW, admitted=True)
    await state.record(
        "u-3", "acme", seen("dev-1", None, NOW + 60, ip="192.0.2.9"), LOW, admitted=True
    )
    history = await state.history("u-3")
    assert (history.last_geo, history.last_seen_at, history.last_ip) == (PARIS, NOW, "192.0.2.9")


async def test_known_devices_are_bounded_most_recent_first(state: RiskStateStore) -> None:
    for n in range(4):
        await state.record("u-4", "acme", seen(f"dev-{n}", None, NOW + n), LOW, admitted=True)
    assert (await state.history("u-4")).known_devices == {"dev-2", "dev-3"}


async def test_store_down_is_store_unavailable(
    redis_server: RedisServer, state: RiskStateStore
) -> None:
    redis_server.stop()
    try:
        with pytest.raises(StoreUnavailable):
            await state.record("u-5", "acme", seen("dev-1", PARIS, NOW), LOW, admitted=True)
        with pytest.raises(StoreUnavailable):
            await state.history("u-5")
    finally:
        redis_server.start()


async def test_an_organisation_without_a_baseline(baselines: BaselineStore) -> None:
    baseline = await baselines.get("acme")
    assert baseline == OrgBaseline("acme") and not baseline.is_defined
    assert baselines.cached("acme") == baseline


EXTEND = OverrideRequest(
    OverrideKind.EXTEND_BASELINE,
    "acme",
    "macs only",
    attribute=BaselineAttribute.OS_FAMILY,
    value="MacOS",
)


async def test_dual_control_extend_baseline(baselines: BaselineStore, audit: Audit) -> None:
    assert (await baselines.get("acme")).os_families == frozenset()  # now cached
    override = await baselines.request_override(EXTEND, ALICE)
    assert override.status is OverrideStatus.PENDING
    assert (await baselines.load("acme")).os_families == frozenset()  # nothing until approved
    with pytest.raises(SameApprover):
        await baselines.approve_override(override.override_id, ALICE)
    approved = await baselines.approve_override(override.override_id, BOB)
    assert (approved.status, approved.approved_by, approved.applied) == (
        OverrideStatus.APPROVED,
        BOB,
        False,
    )
    assert (await baselines.get("acme")).os_families == {"macos"}  # local cache dropped
    assert (await baselines.get_override(override.override_id)).applied is True
    with pytest.raises(PreconditionFailed, match="already approved"):
        await baselines.approve_override(override.override_id, CAROL)
    assert audit.types == [
        "risk.override.requested",
        "risk.override.refused",
        "risk.override.approved",
        "risk.override.refused",
    ]
    assert audit.events[0][1]["requested_by"] == ALICE
    assert audit.events[1][1] == {
        "override_id": override.override_id,
        "by": ALICE,
        "why": "same_admin",
    }
    assert audit.events[2][1]["approved_by"] == BOB


async def test_trust_device_for_one_user(
    client: redis.Redis, baselines: BaselineStore, state: RiskStateStore
) -> None:
    for request in (
        EXTEND,
        OverrideRequest(
            OverrideKind.EXTEND_BASELINE,
            "acme",
            "r",
            attribute=BaselineAttribute.DEVICE_ID,
            value="dev-1",
        ),
    ):
        await baselines.approve_override(
            (await baselines.request_override(request, ALICE)).override_id, BOB
        )
    linux = Telemetry(
        "dev-7", "ua", "192.0.2.1", None, None, NOW, True, DeviceTraits("linux", "firefox")
    )

    async def signals() -> tuple[Signal, ...]:
        history = await history_via_pipeline(client, "u-6")
        result = assess(
            linux, history, await baselines.get("acme"), privileged=False, mfa_fresh=True,
            reputation_hit=False, config=RiskConfig(),
        )  # fmt: skip
        return result.signals

    assert await signals() == (Signal.NEW_DEVICE, Signal.BASELINE_DEVIATION)
    trust = OverrideRequest(
        OverrideKind.TRUST_DEVICE, "acme", "new laptop", user_id="u-6", device_id="dev-7"
    )
    override = await baselines.request_override(trust, BOB)
    await baselines.approve_override(override.override_id, ALICE)
    assert await signals() == ()
    assert (await state.history("u-6")).trusted_devices == {"dev-7"}


async def test_raise_threshold_only_raises(baselines: BaselineStore) -> None:
    lower = OverrideRequest(OverrideKind.RAISE_THRESHOLD, "acme", "r", threshold=0.4)
    with pytest.raises(PreconditionFailed, match=r"already 0\.5"):
        await baselines.request_override(lower, ALICE)
    first = await baselines.request_override(
        OverrideRequest(OverrideKind.RAISE_THRESHOLD, "acme", "r", threshold=0.7), ALICE
    )
    second = await baselines.request_override(
        OverrideRequest(OverrideKind.RAISE_THRESHOLD, "acme", "r", threshold=0.9), ALICE
    )
    await baselines.approve_override(second.override_id, BOB)
    await baselines.approve_override(first.override_id, BOB)  # older, lower: does not undo 0.9
    assert (await baselines.load("acme")).threshold == 0.9


async def test_expired_and_unknown_overrides_are_refused(
    baselines: BaselineStore, clock: Clock, audit: Audit
) -> None:
    override = await baselines.request_override(EXTEND, ALICE)
    clock.now += 601
    with pytest.raises(PreconditionFailed, match="expired"):
        await baselines.approve_override(override.override_id, BOB)
    assert (await baselines.get_override(override.override_id)).status is OverrideStatus.EXPIRED
    for unknown in ("0123456789abcdef", "not-an-id"):
        with pytest.raises(OverrideNotFound):
            await baselines.approve_override(unknown, BOB)
    assert audit.types.count("risk.override.refused") == 3


async def test_concurrent_approvals_apply_once(baselines: BaselineStore, audit: Audit) -> None:
    override = await baselines.request_override(EXTEND, ALICE)
    results = await asyncio.gather(
        baselines.approve_override(override.override_id, BOB),
        baselines.approve_override(override.override_id, CAROL),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert sum(isinstance(r, PreconditionFailed) for r in results) == 1
    assert audit.types.count("risk.override.approved") == 1


async def test_list_overrides(baselines: BaselineStore) -> None:
    a = await baselines.request_override(EXTEND, ALICE)
    other = OverrideRequest(OverrideKind.RAISE_THRESHOLD, "globex", "r", threshold=0.8)
    b = await baselines.request_override(other, ALICE)
    await baselines.approve_override(b.override_id, BOB)
    assert {o.override_id for o in await baselines.list_overrides()} == {
        a.override_id,
        b.override_id,
    }
    assert [o.override_id for o in await baselines.list_overrides("acme")] == [a.override_id]
    assert [o.override_id for o in await baselines.list_overrides(pending_only=True)] == [
        a.override_id
    ]


async def test_a_refused_attempt_waits_as_a_pending_sighting_until_promoted(
    client: redis.Redis, state: RiskStateStore
) -> None:
    tag = user_tag("u-6")
    await state.record("u-6", "acme", seen("dev-1", PARIS, NOW), LOW, admitted=True)
    refused = seen("dev-2", SYDNEY, NOW + 60, ip="198.51.100.1")
    await state.record("u-6", "acme", refused, LOW, admitted=False, session_id="s1")
    history = await state.history("u-6")
    assert (history.known_devices, history.last_geo) == (frozenset({"dev-1"}), PARIS)
    assert not await state.promote_pending(tag, "s2", "dev-2")  # another session's verification
    assert not await state.promote_pending(tag, "s1", "dev-1")  # verified from another device
    assert await state.promote_pending(tag, "s1", "dev-2")
    history = await state.history("u-6")
    assert (history.known_devices, history.last_geo, history.last_ip) == (
        frozenset({"dev-1", "dev-2"}), SYDNEY, "198.51.100.1",
    )  # fmt: skip
    assert not await state.promote_pending(tag, "s1", "dev-2")  # single use


async def test_a_promoted_sighting_never_moves_the_place_back(state: RiskStateStore) -> None:
    tag = user_tag("u-7")
    refused = seen("dev-2", SYDNEY, NOW, ip="198.51.100.1")
    await state.record("u-7", "acme", refused, LOW, admitted=False, session_id="s1")
    await state.record("u-7", "acme", seen("dev-1", PARIS, NOW + 60), LOW, admitted=True)
    assert await state.promote_pending(tag, "s1", "dev-2")
    history = await state.history("u-7")
    assert (history.known_devices, history.last_geo) == (frozenset({"dev-1", "dev-2"}), PARIS)


async def test_an_attempt_without_a_device_id_leaves_nothing_to_promote(
    state: RiskStateStore,
) -> None:
    tag = user_tag("u-8")
    await state.record("u-8", "acme", seen("", SYDNEY, NOW), LOW, admitted=False, session_id="s1")
    assert not await state.promote_pending(tag, "s1", "")
