"""Which KMS provider a custodied deployment may start with: an approved fingerprint.

A provider change (another keyring, another PKCS#11 module or token, other aliases or
record patterns) is a dual-control change request like a rotation. What is approved
is a fingerprint of the provider settings that say where the master keys live:

    SHA-256 over the canonical JSON (sorted keys, no whitespace) of
    {"format": 1, "provider": ..., "keyring": ... | "pkcs11": {"module", "token_label"},
     "aliases": [sorted], "record_patterns": [sorted]}

Never a secret: the PKCS#11 PIN is not in the config, and `pkcs11.pin_env` (the name
of the variable holding it) is left out too, as are `dek_cache` and
`dev_active_version`: none of them says where keys live. A keyring path is taken as
written (lexically normalised), so a relative one fingerprints the same from any
directory.

    admitd:keys:provider   HASH: fingerprint, summary, settings, how, change_id, at

`admitd serve` (with keys.custodians) refuses to start when its `kms:` fingerprint
differs from the approved one, and records it on the first start of a custodied
deployment (`kms.provider.recorded`). Redis unreachable: it does not start.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aredis

from admitd.admin.errors import InvalidRequest
from admitd.errors import AdmitdError, ConfigError
from admitd.kms.audit import AuditEvents, LogAuditEvents
from admitd.kms.base import is_valid_alias
from admitd.kms.config import KmsConfig, Provider

__all__ = [
    "PROVIDER_KEY",
    "ProviderSettings",
    "check_running_provider",
    "provider_record",
    "settings_from_config",
    "settings_from_json",
]

PROVIDER_KEY = "admitd:keys:provider"
_FORMAT = 1
_MAX_JSON = 8192
_MAX_TEXT = 1024

# The first start records its fingerprint unless one is there already (atomic, so two
# replicas starting at once agree). Returns the stored fingerprint, or '' when this
# call recorded it. ARGV: field, value, field, value...
RECORD_SCRIPT = """
local stored = redis.call('HGET', KEYS[1], 'fingerprint')
if stored then return stored end
redis.call('HSET', KEYS[1], unpack(ARGV))
return ''
"""


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """Where the master keys live: the part of `kms:` a provider change is about."""

    provider: str  # local | pkcs11
    aliases: tuple[str, ...]  # sorted
    record_patterns: tuple[str, ...]  # sorted
    keyring: str = ""  # local
    module: str = ""  # pkcs11
    token_label: str = ""  # pkcs11

    def canonical(self) -> str:
        body: dict[str, object] = {
            "format": _FORMAT,
            "provider": self.provider,
            "aliases": list(self.aliases),
            "record_patterns": list(self.record_patterns),
        }
        if self.provider == Provider.LOCAL.value:
            body["keyring"] = self.keyring
        elif self.provider == Provider.PKCS11.value:
            body["pkcs11"] = {"module": self.module, "token_label": self.token_label}
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)

    @property
    def fingerprint(self) -> str:
        """64 hex digits: SHA-256 of `canonical()`."""
        return hashlib.sha256(self.canonical().encode("ascii")).hexdigest()

    @property
    def summary(self) -> str:
        """One line for people (the approver reads it): every field, no secret."""
        where = {
            Provider.LOCAL.value: f"keyring={self.keyring}",
            Provider.PKCS11.value: f"module={self.module} token_label={self.token_label}",
        }.get(self.provider, "")
        parts = [f"provider={self.provider}", where, f"aliases={','.join(self.aliases)}"]
        parts.append(f"record_patterns={','.join(self.record_patterns)}")
        return " ".join(p for p in parts if p)


def settings_from_config(cfg: KmsConfig) -> ProviderSettings:
    keyring = os.path.normpath(str(cfg.keyring)) if cfg.keyring is not None else ""
    pkcs11 = cfg.pkcs11
    return ProviderSettings(
        provider=cfg.provider.value,
        aliases=tuple(sorted(set(cfg.aliases))),
        record_patterns=tuple(sorted(set(cfg.record_patterns))),
        keyring=keyring,
        module=pkcs11.module if pkcs11 is not None else "",
        token_label=pkcs11.token_label if pkcs11 is not None else "",
    )


def settings_from_json(text: str) -> ProviderSettings:
    """The settings a provider change request carries (`canonical()`, or the same JSON
    spelled differently); InvalidRequest says what is wrong. The fingerprint and the
    summary are computed here, from what will be enforced, never taken from the caller."""
    if not text or len(text) > _MAX_JSON:
        raise InvalidRequest(
            "a provider change needs provider_settings: the new kms: section's settings"
            " (admitd keys request provider --config NEW.yaml computes them)"
        )
    try:
        raw = json.loads(text)
    except ValueError:
        raise InvalidRequest("provider_settings is not JSON") from None
    if not isinstance(raw, Mapping) or raw.get("format") != _FORMAT:
        raise InvalidRequest(f"provider_settings must be a JSON object with format {_FORMAT}")
    provider = raw.get("provider")
    expected = {"format", "provider", "aliases", "record_patterns"}
    if provider == Provider.LOCAL.value:
        expected.add("keyring")
    elif provider == Provider.PKCS11.value:
        expected.add("pkcs11")
    else:
        raise InvalidRequest("provider_settings.provider must be local or pkcs11")
    if set(raw) != expected:
        raise InvalidRequest(f"provider_settings must have exactly {', '.join(sorted(expected))}")
    aliases = _texts(raw["aliases"], "aliases")
    if not all(is_valid_alias(a) for a in aliases):
        raise InvalidRequest("provider_settings.aliases must be kms/<name> aliases")
    module = token_label = keyring = ""
    if provider == Provider.LOCAL.value:
        keyring = _text(raw["keyring"], "keyring")
    else:
        pkcs11 = raw["pkcs11"]
        if not isinstance(pkcs11, Mapping) or set(pkcs11) != {"module", "token_label"}:
            raise InvalidRequest("provider_settings.pkcs11 must have exactly module, token_label")
        module = _text(pkcs11["module"], "pkcs11.module")
        token_label = _text(pkcs11["token_label"], "pkcs11.token_label")
    return ProviderSettings(
        provider=str(provider),
        aliases=tuple(sorted(set(aliases))),
        record_patterns=tuple(sorted(set(_texts(raw["record_patterns"], "record_patterns")))),
        keyring=keyring,
        module=module,
        token_label=token_label,
    )


def _text(value: object, key: str) -> str:
    if not isinstance(value, str) or not value or len(value) > _MAX_TEXT:
        raise InvalidRequest(f"provider_settings.{key} must be a non-empty string")
    if not value.isprintable():
        raise InvalidRequest(f"provider_settings.{key} must be printable")
    return value


def _texts(value: object, key: str) -> list[str]:
    if not isinstance(value, list) or not value or len(value) > 64:
        raise InvalidRequest(f"provider_settings.{key} must be a non-empty list of strings")
    return [_text(v, key) for v in value]


def provider_record(settings: ProviderSettings, how: str, change_id: str = "") -> dict[str, str]:
    """The `admitd:keys:provider` hash for `settings` (never a secret: there is none)."""
    return {
        "fingerprint": settings.fingerprint,
        "summary": settings.summary,
        "settings": settings.canonical(),
        "how": how,  # approved | first_start | offline
        "change_id": change_id,
        "at": repr(time.time()),
    }


async def check_running_provider(
    client: aredis.Redis, cfg: KmsConfig, audit: AuditEvents, *, config_file: str
) -> str:
    """At start-up with keys.custodians: the running `kms:` must be the approved provider.

    Records it on a custodied deployment's first start; ConfigError when it differs
    from the approved one, or when Redis cannot say (fail closed). Returns the fingerprint.
    """
    settings = settings_from_config(cfg)
    fingerprint = settings.fingerprint
    record = provider_record(settings, "first_start")
    try:
        script = client.register_script(RECORD_SCRIPT)
        argv = [item for pair in record.items() for item in pair]
        stored = await cast(Any, script(keys=[PROVIDER_KEY], args=argv))
    except (AdmitdError, OSError, aredis.RedisError) as exc:
        raise ConfigError(
            "key custody: cannot read the approved KMS provider from Redis"
            f" ({type(exc).__name__}); admitd does not start without checking it",
            file=config_file,
            key="kms",
            fix="make redis_url reachable, then start admitd again",
        ) from None
    stored = stored.decode() if isinstance(stored, bytes) else str(stored)
    if not stored:
        audit.record(
            "kms.provider.recorded",
            {"fingerprint": fingerprint, "summary": settings.summary, "how": "first_start"},
        )
        return fingerprint
    if stored != fingerprint:
        # To the JSON audit log only: the chain would seal it under the unapproved keys.
        LogAuditEvents().record(
            "kms.provider.refused",
            {
                "fingerprint": fingerprint,
                "approved_fingerprint": stored,
                "summary": settings.summary,
            },
        )
        raise ConfigError(
            f"the kms: provider ({settings.summary}; fingerprint {fingerprint[:16]}) is not the"
            f" approved one (fingerprint {stored[:16]}): a provider change needs dual approval",
            file=config_file,
            key="kms",
            fix="request and approve the provider change first: admitd keys request provider"
            " --config <this config> --reason ... --session-token-file ..."
            " (with --cert/--key/--ca), then a different custodian runs"
            " admitd keys approve <change-id>; or, with the deployment stopped,"
            " admitd keys provider-accept --offline --config <this config>",
        )
    return fingerprint
