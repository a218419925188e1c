"""Build the Keys API handler from the running parts (called by the composition root)."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import redis.asyncio as aredis

from admitd.custody.apply import KmsChanges
from admitd.custody.config import KeysConfig
from admitd.custody.proof import ProofChecker
from admitd.custody.servicer import keys_handler
from admitd.custody.store import KeyCustody
from admitd.errors import ConfigError
from admitd.kms.audit import AuditEvents
from admitd.kms.base import ManagedKms
from admitd.kms.dev import DevKms
from admitd.mfa.passkey_store import RedisPasskeyStore
from admitd.sessions.redis_sync import sync_client_from_url
from admitd.sessions.store import SessionStore

__all__ = ["keys_handler_from_parts"]


def keys_handler_from_parts(
    keys: KeysConfig,
    *,
    config_file: str,
    redis_url: str | None,
    client: aredis.Redis | None,
    kms: object,
    record_patterns: Sequence[str],
    sessions: SessionStore,
    audit: AuditEvents,
) -> grpc.GenericRpcHandler | None:
    """None when no custodians are configured (the Keys API is then not served at all)."""
    if not keys.custodians:
        return None
    if redis_url is None or client is None or not isinstance(kms, ManagedKms):
        raise ConfigError(
            "key custody needs Redis and a KMS provider whose keys admitd manages",
            file=config_file,
            key="keys.custodians",
            fix="set redis_url and kms.provider (local or pkcs11), or remove keys:",
        )
    if isinstance(kms, DevKms):
        raise ConfigError(
            "the dev provider's keys are derived, not managed: there is nothing to custody",
            file=config_file,
            key="keys.custodians",
            fix="use kms.provider local or pkcs11, or remove keys:",
        )
    url = redis_url
    custody = KeyCustody(
        client,
        KmsChanges(kms, lambda: sync_client_from_url(url), patterns=record_patterns),
        ProofChecker(
            sessions,
            RedisPasskeyStore(client),
            max_age_seconds=keys.mfa_max_age_seconds,
            aaguids=keys.aaguids,
        ),
        audit,
        custodians=keys.custodians,
        change_ttl_seconds=keys.change_ttl_seconds,
    )
    return keys_handler(custody, keys.custodians)
