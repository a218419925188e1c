"""Every Redis adapter, against a Redis that was stopped or frozen, raises only admitd errors.

Each public method that reaches Redis is called once per outage: a stopped server (the
pooled connection is dead and reconnecting is refused) and a frozen one (SIGSTOP: the
socket accepts, nothing answers, the client times out). Anything but `StoreUnavailable`
escaping, a raw redis-py exception above all, fails the test.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
import redis.asyncio as redis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from admitd.audit.checkpoint import write_checkpoint
from admitd.audit.sealed import SealedEntry
from admitd.audit.stream import StreamAppender
from admitd.envelope import Sealer
from admitd.errors import StoreUnavailable
from admitd.kms import DEFAULT_ALIASES, MemoryKms
from admitd.mfa.passkey_store import RedisPasskeyStore
from admitd.mfa.state import RedisMfaState
from admitd.risk.baseline import BaselineStore
from admitd.risk.model import DeviceTraits, RiskAssessment, RiskLevel, Telemetry
from admitd.risk.overrides import OverrideKind, OverrideRequest, new_override_id
from admitd.risk.state import RiskStateStore
from admitd.sessions.model import MfaMethod
from admitd.sessions.redis_client import client_from_url
from admitd.sessions.redis_store import RedisSessionStore
from admitd.sessions.tokens import new_session_token, user_tag
from tests.integration.redis_server import RedisServer, free_port
from tests.sessions import make_session

pytestmark = pytest.mark.integration

NOW = 1_700_000_000.0
_, REF = new_session_token("ursula")
TAG = user_tag("ursula")
TELEMETRY = Telemetry(
    "dev-1", "Mozilla/5.0", "192.0.2.1", None, None, NOW, True, DeviceTraits("macos", "safari")
)
LOW = RiskAssessment(0, RiskLevel.LOW, (), 0.0)
TRUST = OverrideRequest(
    OverrideKind.TRUST_DEVICE, "acme", "new laptop", user_id="ursula", device_id="dev-1"
)
ENTRY = SealedEntry(b"\x01" * 32, "{}")


class Events:
    def record(self, event_type: str, fields: dict[str, str]) -> None:
        pass


@dataclass(frozen=True)
class Adapters:
    client: redis.Redis
    sessions: RedisSessionStore
    risk: RiskStateStore
    baselines: BaselineStore
    audit: StreamAppender
    mfa: RedisMfaState
    passkeys: RedisPasskeyStore


def adapters_on(client: redis.Redis) -> Adapters:
    risk = RiskStateStore(
        client, Sealer(MemoryKms.with_aliases(DEFAULT_ALIASES)), retention_seconds=60
    )
    return Adapters(
        client,
        RedisSessionStore(client, cache_ttl=0),
        risk,
        BaselineStore(client, risk, Events(), cache_seconds=0),
        StreamAppender(client, "admitd:audit:test"),
        RedisMfaState(client),
        RedisPasskeyStore(client),
    )


Call = Callable[[Adapters], Awaitable[object]]
CALLS: dict[str, Call] = {
    "sessions.get": lambda a: a.sessions.get(REF),
    "sessions.create": lambda a: a.sessions.create(REF, make_session(REF.session_id)),
    "sessions.set_mfa": lambda a: a.sessions.set_mfa(REF, NOW, MfaMethod.TOTP),
    "sessions.touch": lambda a: a.sessions.touch({REF: NOW}),
    "sessions.revoke": lambda a: a.sessions.revoke(REF),
    "sessions.revoke_user": lambda a: a.sessions.revoke_user("ursula"),
    "sessions.list_user": lambda a: a.sessions.list_user("ursula"),
    "sessions.factors": lambda a: a.sessions.factors("ursula"),
    "sessions.set_factor": lambda a: a.sessions.set_factor(
        "ursula", MfaMethod.TOTP, active=True, at=NOW
    ),
    "sessions.take_enrolment_grant": lambda a: a.sessions.take_enrolment_grant(REF, NOW),
    "sessions.invalidate_user": lambda a: a.sessions.invalidate_user(TAG),
    "risk.history": lambda a: a.risk.history("ursula"),
    "risk.record(admitted)": lambda a: a.risk.record(
        "ursula", "acme", TELEMETRY, LOW, admitted=True
    ),
    "risk.record(refused)": lambda a: a.risk.record(
        "ursula", "acme", TELEMETRY, LOW, admitted=False, session_id=REF.session_id
    ),
    "risk.promote_pending": lambda a: a.risk.promote_pending(TAG, REF.session_id, "dev-1"),
    "risk.trust_device": lambda a: a.risk.trust_device("ursula", "dev-1", NOW),
    "baselines.get": lambda a: a.baselines.get("acme"),
    "baselines.request_override": lambda a: a.baselines.request_override(TRUST, "admin-1"),
    "baselines.approve_override": lambda a: a.baselines.approve_override(
        new_override_id(), "admin-2"
    ),
    "baselines.get_override": lambda a: a.baselines.get_override(new_override_id()),
    "baselines.list_overrides": lambda a: a.baselines.list_overrides(),
    "audit.append": lambda a: a.audit.append([ENTRY]),
    "audit.write_checkpoint": lambda a: write_checkpoint(
        a.client, Ed25519PrivateKey.generate(), stream="admitd:audit:test", instance="t", now=NOW
    ),
    "mfa.set_if_absent": lambda a: a.mfa.set_if_absent("k", "v", 10),
    "mfa.incr": lambda a: a.mfa.incr("k", 10),
    "mfa.get": lambda a: a.mfa.get("k"),
    "mfa.put": lambda a: a.mfa.put("k", "v"),
    "mfa.delete": lambda a: a.mfa.delete("k"),
    "mfa.reserve_attempt": lambda a: a.mfa.reserve_attempt("c", "n", now=NOW, waits=(0.0, 1.0)),
    "passkeys.put_challenge": lambda a: a.passkeys.put_challenge(
        "ursula", "register", b"c", ttl=60, now=NOW
    ),
    "passkeys.take_challenge": lambda a: a.passkeys.take_challenge("ursula", "register", now=NOW),
    "passkeys.credential_ids": lambda a: a.passkeys.credential_ids("ursula"),
    "passkeys.credential": lambda a: a.passkeys.credential("ursula", "cred-1"),
    "passkeys.save_credential": lambda a: a.passkeys.save_credential(
        "ursula", "cred-1", "sealed", expected=None
    ),
    "passkeys.reserve_attempt": lambda a: a.passkeys.reserve_attempt(
        "ursula", max_failures=5, window=60, now=NOW
    ),
    "passkeys.clear_failures": lambda a: a.passkeys.clear_failures("ursula"),
}


@pytest.fixture(params=["stopped", "frozen"])
async def broken(
    request: pytest.FixtureRequest, redis_server: RedisServer
) -> AsyncIterator[Adapters]:
    redis_server.start()  # again, after the previous test stopped it
    # A short timeout keeps the frozen cases quick; the mapping does not depend on it.
    client = client_from_url(redis_server.url, timeout=0.1)
    await client.ping()  # a pooled connection, which the outage leaves stale
    if request.param == "stopped":
        redis_server.stop()
    else:
        redis_server.freeze()
    try:
        yield adapters_on(client)
    finally:
        redis_server.thaw()
        await client.aclose()


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
async def test_a_broken_redis_raises_only_store_unavailable(broken: Adapters, call: Call) -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as raised:
        await call(broken)
    assert str(raised.value).startswith("Redis ")
    assert "127.0.0.1" not in str(raised.value)
    assert time.monotonic() - started < 5  # failed, not hung


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:{port}/0",
        "redis+sentinel://127.0.0.1:{port}/mymaster",
        "redis+cluster://127.0.0.1:{port}",
    ],
    ids=["standalone", "sentinel", "cluster"],
)
async def test_every_client_kind_maps_a_refused_connection(url: str) -> None:
    """Nothing listens: Sentinel finds no master, the cluster no node to map its slots."""
    client = client_from_url(url.format(port=free_port()), timeout=0.2)
    sessions = RedisSessionStore(client, cache_ttl=0)
    try:
        with pytest.raises(StoreUnavailable):
            await sessions.get(REF)
        with pytest.raises(StoreUnavailable):
            await sessions.create(REF, make_session(REF.session_id))
        with pytest.raises(StoreUnavailable):
            await RedisMfaState(client).reserve_attempt("c", "n", now=NOW, waits=(1.0,))
    finally:
        await client.aclose()
