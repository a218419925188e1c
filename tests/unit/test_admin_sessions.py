"""SessionAdmin: the privileged-without-factor rule, lifetimes, validation, step-up."""

from __future__ import annotations

import dataclasses

import pyotp
import pytest

from admitd.admin.errors import InvalidRequest, PreconditionFailed, SessionNotFound
from admitd.admin.sessions import NewSession, SessionAdmin, ref_for_session, ref_for_token
from admitd.envelope import Sealer
from admitd.kms import DEFAULT_ALIASES, MemoryKms
from admitd.mfa.config import MfaConfig
from admitd.mfa.ports import MfaResult
from admitd.mfa.state import MemoryMfaState
from admitd.mfa.totp import TotpService
from admitd.sessions.memory_store import MemorySessionStore
from admitd.sessions.model import MfaMethod
from admitd.sessions.tokens import parse_session_token

T0 = 1_700_000_010.0
PRIVILEGED = ("admin", "finance", "analyst", "auditor")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class Rig:
    admin: SessionAdmin
    store: MemorySessionStore
    totp: TotpService
    clock: Clock


def rig(privileged: tuple[str, ...] = PRIVILEGED) -> Rig:
    store, clock = MemorySessionStore(), Clock()
    sealer = Sealer(MemoryKms.with_aliases(DEFAULT_ALIASES))
    totp = TotpService(MemoryMfaState(), sealer, store, MfaConfig(backoff_base_seconds=0))
    admin = SessionAdmin(
        store,
        totp,
        idle_timeout=1800,
        absolute_timeout=43200,
        privileged_roles=privileged,
        clock=clock,
    )
    return Rig(admin, store, totp, clock)


def new(roles: tuple[str, ...] = ("viewer",), **changes: object) -> NewSession:
    base = NewSession("u-1", "acme", frozenset(roles), "dev-1")
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


async def enrol(r: Rig, user: str = "u-1") -> str:
    uri = (await r.admin.begin_totp(user, "acme")).provisioning_uri
    secret = pyotp.parse_uri(uri).secret
    assert await r.admin.confirm_totp(user, "acme", pyotp.TOTP(secret).at(r.clock.now)) == "ok"
    return secret


@pytest.mark.parametrize("role", PRIVILEGED)
async def test_privileged_role_without_a_factor_gets_no_session(role: str) -> None:
    r = rig()
    with pytest.raises(PreconditionFailed, match=rf"privileged role\(s\) {role} but no active"):
        await r.admin.create(new(("viewer", role)))
    assert await r.store.list_user("u-1") == []


async def test_privileged_role_with_totp_gets_a_session() -> None:
    r = rig()
    await enrol(r)
    created = await r.admin.create(new(("admin",)))
    assert created.session.roles == {"admin"}


async def test_a_passkey_counts_as_a_factor() -> None:
    r = rig()
    await r.store.set_factor("u-1", MfaMethod.PASSKEY, active=True, at=T0)
    assert (await r.admin.create(new(("finance",)))).session.user_id == "u-1"


async def test_unprivileged_roles_need_no_factor() -> None:
    assert (await rig().admin.create(new(("viewer", "editor")))).session.roles == {
        "viewer",
        "editor",
    }


async def test_the_privileged_list_is_configurable() -> None:
    r = rig(privileged=("operator",))
    assert (await r.admin.create(new(("admin",)))).session is not None
    with pytest.raises(PreconditionFailed):
        await r.admin.create(new(("operator",)))


async def test_created_session_has_the_configured_lifetimes_and_a_usable_token() -> None:
    r = rig()
    created = await r.admin.create(new(mfa_verified_at=T0 - 10, mfa_method=MfaMethod.TOTP))
    session = created.session
    assert (session.created_at, session.idle_timeout) == (T0, 1800)
    assert session.absolute_expires_at == T0 + 43200
    assert (session.mfa_verified_at, session.mfa_method) == (T0 - 10, MfaMethod.TOTP)
    ref = parse_session_token(created.token)
    assert ref is not None and ref.session_id == session.session_id
    assert created.token not in repr(created)
    assert await r.store.get(ref) is not None


async def test_an_enrolment_grant_is_bound_to_the_new_session_and_short() -> None:
    r = rig()
    created = await r.admin.create(new(enrolment_grant_seconds=600))
    assert created.session.enrolment_grant_until == T0 + 600
    ref = parse_session_token(created.token)
    assert ref is not None
    stored = await r.store.get(ref)
    assert stored is not None and stored.has_enrolment_grant(T0 + 599)
    assert not stored.has_enrolment_grant(T0 + 600)
    plain = await r.admin.create(new())
    assert plain.session.enrolment_grant_until is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"enrolment_grant_seconds": 0}, "enrolment_grant_seconds must be 1-3600"),
        ({"enrolment_grant_seconds": 3601}, "enrolment_grant_seconds must be 1-3600"),
        ({"user_id": ""}, "user_id must be"),
        ({"organisation": "a\nb"}, "organisation must be"),
        ({"device_id": "x" * 257}, "device_id must be"),
        ({"roles": frozenset({"a,b"})}, "must not contain ','"),
        ({"mfa_verified_at": T0}, "go together"),
        ({"mfa_verified_at": T0 + 3600, "mfa_method": MfaMethod.TOTP}, "past Unix time"),
    ],
    ids=[
        "grant-zero",
        "grant-too-long",
        "no-user",
        "control-char",
        "too-long",
        "comma-role",
        "mfa-without-method",
        "future",
    ],
)
async def test_invalid_requests_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        await rig().admin.create(new(**changes))


async def test_verify_mfa_refreshes_the_session() -> None:
    r = rig()
    secret = await enrol(r)
    created = await r.admin.create(new(("admin",)))
    ref = parse_session_token(created.token)
    assert ref is not None
    r.clock.now = T0 + 300
    result, at = await r.admin.verify_mfa(ref, pyotp.TOTP(secret).at(r.clock.now))
    assert (result, at) == (MfaResult.OK, T0 + 300)
    session = await r.store.get(ref)
    assert session is not None and session.mfa_verified_at == T0 + 300
    assert session.mfa_method is MfaMethod.TOTP


async def test_a_failed_verification_leaves_the_session_alone() -> None:
    r = rig()
    await enrol(r)
    ref = ref_for_token((await r.admin.create(new())).token)
    assert await r.admin.verify_mfa(ref, "000000") == (MfaResult.INVALID, None)
    session = await r.store.get(ref)
    assert session is not None and session.mfa_verified_at is None


async def test_verify_mfa_on_a_revoked_or_expired_session_is_not_found() -> None:
    r = rig()
    secret = await enrol(r)
    first = ref_for_token((await r.admin.create(new())).token)
    second = ref_for_token((await r.admin.create(new())).token)
    assert await r.admin.revoke(first)
    with pytest.raises(SessionNotFound):
        await r.admin.verify_mfa(first, pyotp.TOTP(secret).at(r.clock.now))
    r.clock.now = T0 + 1800  # idle timeout
    with pytest.raises(SessionNotFound):
        await r.admin.verify_mfa(second, pyotp.TOTP(secret).at(r.clock.now))


async def test_list_and_revoke_user() -> None:
    r = rig()
    refs = [ref_for_token((await r.admin.create(new())).token) for _ in range(3)]
    sessions, factors = await r.admin.list_user("u-1")
    assert {s.session_id for s in sessions} == {ref.session_id for ref in refs}
    assert factors == frozenset()
    assert await r.admin.revoke(ref_for_session("u-1", refs[0].session_id))
    assert await r.admin.revoke_user("u-1") == 2
    assert await r.admin.list_user("u-1") == ([], frozenset())


@pytest.mark.parametrize("session_id", ["", "ABC", "g" * 64, "a" * 63])
def test_session_ids_are_checked(session_id: str) -> None:
    with pytest.raises(InvalidRequest, match="64 lowercase hex"):
        ref_for_session("u-1", session_id)


def test_tokens_are_checked() -> None:
    with pytest.raises(InvalidRequest, match="not a session token"):
        ref_for_token("nope")
