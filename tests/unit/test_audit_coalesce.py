"""Coalescing identical plain denials, the canonical encoder that writes entries, and the
count as the spool, the verifier and the export reader see it (no Redis)."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from admitd.audit.chain import ChainHead, links_after
from admitd.audit.coalesce import COALESCED_REASONS, Coalescer, is_privileged_route
from admitd.audit.decision import CapturedDecision, audit_event
from admitd.audit.entry import (
    AuditEntry,
    Coalesced,
    _document,
    canonical_bytes,
    canonical_bytes_from_mapping,
    entry_digest,
    rfc3339,
)
from admitd.audit.metrics import AuditMetrics
from admitd.audit.sealed import SealedEntry
from admitd.audit.spool import Spool, sealed_entry_from_line
from admitd.audit.verify import Record, decisions_in, verify_chain
from admitd.core.decision import Decision, Reason
from admitd.core.identity import ClientIdentity, User
from admitd.core.risk import RiskAssessment, RiskLevel, Signal
from admitd.core.route import PolicySet
from admitd.policy.loader import load_policies

POLICY = """
routes:
  - {name: api, match: {path_prefix: /api/}, identities: any}
  - {name: admin, match: {path_prefix: /admin/}, identities: any, roles: [admin]}
  - {name: fresh, match: {path_prefix: /fresh/}, identities: any, session: required,
     mfa_max_age: 300}
  - {name: recover, match: {path_prefix: /recover/}, identities: any, session: required,
     recovery: true}
  - name: reports
    match: {path_prefix: /reports/}
    identities: any
    session: required
    organisations:
      acme: {roles: [finance]}
"""
PRIVILEGED = frozenset({"admin", "finance", "analyst", "auditor"})
ALICE = ClientIdentity("f" * 64, "s" * 64, "01", "CN=alice", ("spiffe://t/alice",), ())


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> PolicySet:
    path = tmp_path_factory.mktemp("policy") / "routes.yaml"
    path.write_text(POLICY)
    return load_policies(path)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def denial(policy: PolicySet, **changes: object) -> Decision:
    base = Decision(
        allowed=False,
        reason=Reason.IDENTITY_NOT_ALLOWED,
        route="api",
        identity=ALICE,
        policy_version=policy.version,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def captured(
    decision: Decision, at: float = 1000.0, ip: str = "203.0.113.7", device: str = ""
) -> CapturedDecision:
    event = audit_event(decision)
    assert event is not None
    return CapturedDecision(event, decision, ip, device, at)


def coalescer(policy: PolicySet, clock: Clock, seconds: float = 1.0) -> Coalescer:
    c = Coalescer(seconds, "i-1", max_windows=100, clock=clock)
    c.use_policy(lambda: policy, PRIVILEGED)
    return c


def test_forty_identical_denials_give_one_entry_now_and_one_with_a_count(
    policy: PolicySet,
) -> None:
    clock, decision = Clock(), denial(policy)
    c = coalescer(policy, clock)
    written = c.entries([captured(decision, at=1000.0 + n / 100) for n in range(40)])
    assert len(written) == 1 and written[0].coalesced is None and written[0].time == 1000.0
    assert c.due() == [] and c.pending == 39  # the window is still open
    clock.now += 1.0
    (follow_up,) = c.due()
    assert follow_up.coalesced == Coalesced(39, 1000.39)
    assert follow_up.time == 1000.01 and follow_up.decisions == 39 and c.pending == 0
    # Same fields as the first occurrence: only time, salt and the count differ.
    assert replace(follow_up, time=1000.0, salt=written[0].salt, coalesced=None) == written[0]
    assert follow_up.salt != written[0].salt


def test_close_flushes_every_open_window(policy: PolicySet) -> None:
    c = coalescer(policy, Clock())
    c.entries([captured(denial(policy), ip=f"10.0.0.{n % 3}") for n in range(9)])
    follow_ups = c.due(everything=True)
    assert sorted(e.source_ip for e in follow_ups) == ["10.0.0.0", "10.0.0.1", "10.0.0.2"]
    assert [e.decisions for e in follow_ups] == [2, 2, 2] and c.pending == 0


def test_a_repeat_after_the_window_opens_a_new_one_behind_the_follow_up(
    policy: PolicySet,
) -> None:
    c = coalescer(policy, Clock())
    decision = denial(policy)
    out = c.entries([captured(decision, at=t) for t in (1000.0, 1000.5, 1000.9, 1001.0, 1001.1)])
    # first, follow-up (2: 1000.5 and 1000.9), the repeat at 1001.0 written at once
    assert [e.decisions for e in out] == [1, 2, 1]
    assert out[1].coalesced == Coalesced(2, 1000.9) and out[2].time == 1001.0
    assert [e.decisions for e in c.due(everything=True)] == [1]  # 1001.1


def test_coalescing_off_writes_every_denial(policy: PolicySet) -> None:
    c = coalescer(policy, Clock(), seconds=0.0)
    assert len(c.entries([captured(denial(policy)) for _ in range(5)])) == 5


def test_nothing_is_coalesced_before_the_policy_is_known(policy: PolicySet) -> None:
    c = Coalescer(1.0, "i", clock=Clock())
    assert len(c.entries([captured(denial(policy)) for _ in range(5)])) == 5


VIEWER = User("u-1", "other", frozenset({"viewer"}), session_id="s-1", device_id="d-1")


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"reason": Reason.MFA_STEP_UP_REQUIRED}, id="step-up"),
        pytest.param({"reason": Reason.MFA_ENROLLMENT_REQUIRED}, id="mfa-enrolment"),
        pytest.param({"reason": Reason.CERTIFICATE_REVOKED}, id="revoked-certificate"),
        pytest.param({"reason": Reason.AUTHORIZATION_UNAVAILABLE}, id="fail-closed"),
        pytest.param({"reason": Reason.SESSION_STORE_UNAVAILABLE}, id="store-unavailable"),
        pytest.param({"reason": Reason.RISK_CRITICAL}, id="risk-denial"),
        pytest.param({"reason": Reason.RECOVERY_BLOCKED_BY_RISK}, id="recovery-blocked"),
        pytest.param(
            {"risk": RiskAssessment(0.8, RiskLevel.HIGH, (Signal.NEW_DEVICE,), 0.0)},
            id="high-risk",
        ),
        pytest.param(
            {"risk": RiskAssessment(0.99, RiskLevel.CRITICAL, (), 0.0)}, id="critical-risk"
        ),
        pytest.param(
            {"risk": RiskAssessment(0.1, RiskLevel.LOW, (Signal.PRIVILEGED_WITHOUT_MFA,), 0.0)},
            id="privileged-without-mfa",
        ),
        pytest.param(
            {"user": replace(VIEWER, roles=frozenset({"viewer", "auditor"}))},
            id="privileged-role",
        ),
        pytest.param({"mfa_checked": True}, id="mfa-checked-route"),
        pytest.param({"step_up_max_age": 300}, id="step-up-age"),
        pytest.param({"route": "admin", "reason": Reason.ROLE_REQUIRED}, id="privileged-route"),
        pytest.param({"route": "fresh"}, id="mfa-age-route"),
        pytest.param({"route": "recover"}, id="recovery-route"),
        pytest.param({"route": "reports"}, id="privileged-organisation-variant"),
        pytest.param({"route": "gone"}, id="route-unknown-to-the-live-policy"),
        pytest.param({"policy_version": "older"}, id="decided-under-another-policy"),
    ],
)
def test_privileged_and_risky_denials_are_never_merged(
    policy: PolicySet, changes: dict[str, object]
) -> None:
    c = coalescer(policy, Clock())
    special = denial(policy, **changes)
    plain = denial(policy)
    items = [captured(plain if n % 4 else special) for n in range(40)]  # 10 special, 30 plain
    written = c.entries(items)
    # Each special one on its own, the plain ones in one window (whatever their key).
    assert len(written) == 11, [e.reason for e in written]
    (follow_up,) = c.due(everything=True)
    assert follow_up.decisions == 29 and follow_up.reason == plain.reason.value


@pytest.mark.parametrize(
    "other",
    [
        pytest.param({"ip": "198.51.100.1"}, id="source-ip"),
        pytest.param({"device": "phone-2"}, id="device-id"),
        pytest.param({"reason": Reason.CERTIFICATE_EXPIRED}, id="reason"),
        pytest.param({"route": ""}, id="route"),
        pytest.param({"redirect_to": "https://x/sign-in"}, id="status"),
        pytest.param({"identity": replace(ALICE, fingerprint_sha256="e" * 64)}, id="certificate"),
        pytest.param({"identity": replace(ALICE, uris=("spiffe://t/bob",))}, id="principal"),
        pytest.param({"identity": None}, id="no-certificate"),
        pytest.param({"user": replace(VIEWER, user_id="u-2")}, id="user"),
        pytest.param({"user": replace(VIEWER, session_id="s-2")}, id="session"),
        pytest.param({"user": replace(VIEWER, organisation="o-2")}, id="organisation"),
        pytest.param({"user": replace(VIEWER, device_id="d-2")}, id="session-device"),
        pytest.param({"risk": RiskAssessment(0.3, RiskLevel.MEDIUM, (), 0.0)}, id="risk"),
        pytest.param(
            {"risk": RiskAssessment(0.1, RiskLevel.LOW, (Signal.NEW_DEVICE,), 0.0)}, id="signals"
        ),
    ],
)
def test_different_sources_and_reasons_are_never_merged(
    policy: PolicySet, other: dict[str, object]
) -> None:
    c = coalescer(policy, Clock())
    base = denial(policy, user=VIEWER)
    ip, device = str(other.pop("ip", "203.0.113.7")), str(other.pop("device", ""))
    changed = denial(policy, **{"user": VIEWER, **other})
    items = [captured(base), captured(changed, ip=ip, device=device)] * 5
    assert len(c.entries(items)) == 2  # two first occurrences, one window each
    assert sorted(e.decisions for e in c.due(everything=True)) == [4, 4]


def test_a_full_window_table_writes_new_sources_one_by_one(policy: PolicySet) -> None:
    c = Coalescer(1.0, "i", max_windows=2, clock=Clock())
    c.use_policy(lambda: policy, PRIVILEGED)
    items = [captured(denial(policy), ip=f"10.0.0.{n % 3}") for n in range(6)]
    written = c.entries(items)
    assert [e.source_ip for e in written] == ["10.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.0.2"]
    assert sorted(e.decisions for e in c.due(everything=True)) == [1, 1]


def test_reason_list_names_real_plain_denials() -> None:
    assert COALESCED_REASONS.issubset(r.value for r in Reason)
    never = {"allowed", "public_route", "revoked", "mfa_step_up_required"}
    assert not never & COALESCED_REASONS
    assert not {r for r in COALESCED_REASONS if "unavailable" in r or "risk" in r}


def test_privileged_routes(policy: PolicySet) -> None:
    named = {r.name: is_privileged_route(r, PRIVILEGED) for r in policy.routes}
    assert named == {"api": False, "admin": True, "fresh": True, "recover": True, "reports": True}
    assert not is_privileged_route(None, PRIVILEGED)


# ---------------------------------------------------------------- the encoding

_TEXTS = ["", "a", 'quo"te', "back\\slash", "é", "名", "\U0001f600", "\x00\x1f\n\t", "\u2028", "z"]


def random_entry(r: random.Random) -> AuditEntry:
    def text() -> str:
        return "".join(r.choice(_TEXTS) for _ in range(r.randrange(4)))

    coalesced = Coalesced(r.randrange(1, 10**6), r.uniform(0, 4e9)) if r.random() < 0.5 else None
    details = tuple((r.choice(["route", "status", "b", "é", "count"]), text()) for _ in range(3))
    return AuditEntry(
        time=r.choice([r.uniform(0, 4e9), r.randrange(2**31) + 0.9999995, 0.5]),
        event_type=text(),
        decision=text(),
        reason=text(),
        principal=text(),
        user=text(),
        organisation=text(),
        session_hash=text(),
        device_id=text(),
        source_ip=text(),
        risk_level=text(),
        risk_signals=tuple(text() for _ in range(r.randrange(3))),
        policy_version=text(),
        instance=text(),
        details=details,
        salt=text(),
        coalesced=coalesced,
    )


def test_fast_encoder_is_byte_for_byte_the_canonical_json() -> None:
    r = random.Random(16)
    for _ in range(3000):
        entry = random_entry(r)
        assert canonical_bytes(entry) == canonical_bytes_from_mapping(_document(entry)), entry


def test_coalesced_entry_format() -> None:
    entry = AuditEntry(time=1.5, event_type="decision.denied", coalesced=Coalesced(39, 2.25))
    document = json.loads(canonical_bytes(entry))
    assert (document["count"], document["first_time"], document["last_time"]) == (
        "39",
        "1970-01-01T00:00:01.500000Z",
        "1970-01-01T00:00:02.250000Z",
    )
    assert document["time"] == document["first_time"] and document["v"] == "1"
    assert "count" not in json.loads(canonical_bytes(replace(entry, coalesced=None)))


def test_time_text_rounds_like_datetime() -> None:
    r = random.Random(3)
    for _ in range(20000):
        t = r.choice([r.uniform(0, 4e9), r.randrange(4 * 10**9) + r.choice([5e-7, 0.9999995])])
        assert rfc3339(t) == datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_text_that_is_not_unicode_does_not_fail_the_entry() -> None:
    entry = AuditEntry(time=1.0, event_type="x", user="bad\ud800text", salt="00")
    assert json.loads(canonical_bytes(entry))["user"] == "bad?text"


# ---------------------------------------------------------------- the count downstream


def test_spool_keeps_the_count_and_reads_old_lines(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    spool = Spool(tmp_path / "s.jsonl", 1 << 20, AuditMetrics(registry))
    spool.append([SealedEntry(bytes(32), '{"e":1}'), SealedEntry(bytes(32), '{"e":2}', 39)])
    assert registry.get_sample_value("admitd_audit_appends_total", {"outcome": "spooled"}) == 40
    assert [e.count for e in spool.read_batch(10).entries] == [1, 39]
    old = b'{"digest":"' + b"00" * 32 + b'","envelope":"{}"}\n'
    assert sealed_entry_from_line(old) == SealedEntry(bytes(32), "{}", 1)
    assert SealedEntry(bytes(32), "{}").spool_line() == old  # unchanged for count 1


@pytest.mark.parametrize("count", ["0", "-1", "true", '"3"', "1.5"])
def test_spool_refuses_a_bad_count(count: str) -> None:
    line = b'{"digest":"' + b"00" * 32 + b'","envelope":"{}","count":' + count.encode() + b"}"
    with pytest.raises(ValueError, match="count"):
        sealed_entry_from_line(line)


def test_verify_counts_decisions_and_names_a_bad_count() -> None:
    plain = AuditEntry(time=1.0, event_type="decision.denied", details=(("count", "7"),))
    merged = replace(plain, coalesced=Coalesced(39, 2.0))
    assert decisions_in(canonical_bytes(plain)) == 1  # a detail called count is no count
    assert decisions_in(canonical_bytes(merged)) == 39
    for bad in ("0", "07", "-1", "x", "٣"):
        text = canonical_bytes(merged).replace(b'"count":"39"', f'"count":"{bad}"'.encode())
        assert isinstance(decisions_in(text), str), bad
    plaintexts = [canonical_bytes(e) for e in (plain, merged, plain)]
    links = links_after(ChainHead.genesis(), (entry_digest(p) for p in plaintexts))
    records = [
        Record(n + 1, str(n), link.seq, link.prev, link.digest, link.hash, plaintext=p)
        for n, (link, p) in enumerate(zip(links, plaintexts, strict=True))
    ]
    report = verify_chain(
        records, opener=None, checkpoints={}, start=ChainHead.genesis(), check_tail=True
    )
    assert report.problem is None and (report.entries, report.decisions) == (3, 41)
    links_only = [replace(r, plaintext=None) for r in records]
    report = verify_chain(
        links_only, opener=None, checkpoints={}, start=ChainHead.genesis(), check_tail=True
    )
    assert report.problem is None and report.decisions is None
