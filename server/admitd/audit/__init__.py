"""The tamper-evident audit log: a SHA-256 hash chain of sealed entries in a Redis stream."""

from __future__ import annotations

from admitd.audit.chain import GENESIS, ChainHead, chain_hash
from admitd.audit.config import (
    SECTION_KEYS,
    AuditConfig,
    audit_config_from_fields,
    public_key_from_file,
    signing_key_from_file,
)
from admitd.audit.decision import audit_entry_from_decision
from admitd.audit.entry import AuditEntry, AuditEvent, canonical_bytes
from admitd.audit.events import AuditLogEvents
from admitd.audit.log import AuditLog

__all__ = [
    "GENESIS",
    "SECTION_KEYS",
    "AuditConfig",
    "AuditEntry",
    "AuditEvent",
    "AuditLog",
    "AuditLogEvents",
    "ChainHead",
    "audit_config_from_fields",
    "audit_entry_from_decision",
    "canonical_bytes",
    "chain_hash",
    "public_key_from_file",
    "signing_key_from_file",
]
