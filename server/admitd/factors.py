"""Assemble the second factors and the step-up signer from config (one Redis client shared)."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as redis

from admitd.audit.hooks import Append, AuditedPasskeys, AuditedTotp
from admitd.config import Config
from admitd.envelope import DekCache, Sealer
from admitd.errors import ConfigError
from admitd.kms.config import kms_from_config
from admitd.mfa.passkey_store import MemoryPasskeyStore, PasskeyStore, RedisPasskeyStore
from admitd.mfa.passkeys import PasskeyPolicy, PasskeyService
from admitd.mfa.ports import PasskeyFactor, TotpFactor
from admitd.mfa.state import MemoryMfaState, MfaStateStore, RedisMfaState
from admitd.mfa.totp import TotpService
from admitd.sessions.store import SessionStore
from admitd.web.return_to import ReturnToSigner

__all__ = ["Factors", "factors_from_config", "sealer_from_config"]


@dataclass(frozen=True, slots=True)
class Factors:
    totp: TotpFactor
    passkeys: PasskeyFactor | None  # needs the `web:` section (the WebAuthn relying party)
    signer: ReturnToSigner | None


def sealer_from_config(config: Config) -> Sealer | None:
    if config.kms is None:
        return None
    cache = DekCache(config.kms.dek_cache_entries, config.kms.dek_cache_ttl_seconds)
    return Sealer(kms_from_config(config.kms), cache=cache)


def factors_from_config(
    config: Config,
    store: SessionStore,
    client: redis.Redis | None,
    sealer: Sealer | None,
    audit: Append | None = None,
    *,
    instance: str = "",
) -> Factors | None:
    """None when no KMS is configured: factor secrets are only ever stored sealed.

    With `audit`, every verification and enrolment outcome is appended to the audit log,
    naming `instance` (the replica that checked the code).
    """
    if sealer is None:
        if config.web is not None or config.admin is not None:
            raise ConfigError(
                "the step-up pages and the admin API need second factors, whose secrets"
                " are only ever stored sealed",
                file=config.file,
                key="kms",
                fix="configure `kms:` (see docs/envelope.md), or remove `web:` and `admin:`",
            )
        return None
    state: MfaStateStore = RedisMfaState(client) if client is not None else MemoryMfaState()
    totp: TotpFactor = TotpService(state, sealer, store, config.mfa)
    if audit is not None:
        totp = AuditedTotp(totp, audit, instance)
    if config.web is None:
        return Factors(totp, None, None)
    passkey_store: PasskeyStore = (
        RedisPasskeyStore(client) if client is not None else MemoryPasskeyStore()
    )
    policy = PasskeyPolicy(
        rp_id=config.web.rp_id, rp_name=config.web.rp_name, origins=config.web.origins
    )
    passkeys: PasskeyFactor = PasskeyService(passkey_store, sealer, store, policy)
    if audit is not None:
        passkeys = AuditedPasskeys(passkeys, audit, instance)
    return Factors(totp, passkeys, ReturnToSigner(config.web.signing_key))
