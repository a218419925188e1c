"""Key management: master keys per alias behind the `Kms` port (local, dev, PKCS#11)."""

from __future__ import annotations

from admitd.kms.adapter import SyncKmsAdapter, async_kms
from admitd.kms.audit import AuditEvents, LogAuditEvents
from admitd.kms.base import (
    ALIAS_AUDIT_LOG,
    ALIAS_DEVICE_TELEMETRY,
    ALIAS_SESSION_SECRETS,
    DEFAULT_ALIASES,
    AsyncKms,
    KeyState,
    KeyVersion,
    Kms,
    ManagedKms,
    WrappedDek,
)
from admitd.kms.config import (
    KmsConfig,
    Pkcs11Config,
    Provider,
    kms_config_from_mapping,
    kms_from_config,
)
from admitd.kms.dev import DevKms
from admitd.kms.errors import (
    AliasNotFound,
    KeyAdminUnsupported,
    KeyInUse,
    KeyNotFound,
    KeyVersionNotFound,
    KmsError,
    WrongKey,
)
from admitd.kms.keyring import MemoryKms
from admitd.kms.local import LocalKms, create_keyring_file

# Pkcs11Kms is not re-exported: python-pkcs11 is optional (`admitd.kms.pkcs11`).
__all__ = [
    "ALIAS_AUDIT_LOG",
    "ALIAS_DEVICE_TELEMETRY",
    "ALIAS_SESSION_SECRETS",
    "DEFAULT_ALIASES",
    "AliasNotFound",
    "AsyncKms",
    "AuditEvents",
    "DevKms",
    "KeyAdminUnsupported",
    "KeyInUse",
    "KeyNotFound",
    "KeyState",
    "KeyVersion",
    "KeyVersionNotFound",
    "Kms",
    "KmsConfig",
    "KmsError",
    "LocalKms",
    "LogAuditEvents",
    "ManagedKms",
    "MemoryKms",
    "Pkcs11Config",
    "Provider",
    "SyncKmsAdapter",
    "WrappedDek",
    "WrongKey",
    "async_kms",
    "create_keyring_file",
    "kms_config_from_mapping",
    "kms_from_config",
]
