"""Key-management errors; every one derives from `admitd.errors.KmsError`.

    KmsError                    a key provider failed, refused, or is misconfigured
    ├── KeyNotFound             (admitd.errors) the alias/version is not held
    │   ├── AliasNotFound       no such alias at this provider
    │   └── KeyVersionNotFound  the version never existed or has been retired
    ├── WrongKey                the named version did not unwrap the DEK
    ├── KeyInUse                a version still seals records and cannot be retired
    └── KeyAdminUnsupported     the provider cannot create, rotate or retire keys

Messages name aliases and versions only, never key material.
"""

from __future__ import annotations

from admitd.errors import KeyNotFound, KmsError

__all__ = [
    "AliasNotFound",
    "KeyAdminUnsupported",
    "KeyInUse",
    "KeyNotFound",
    "KeyVersionNotFound",
    "KmsError",
    "WrongKey",
]


class AliasNotFound(KeyNotFound):
    """The provider holds no key under this alias."""


class KeyVersionNotFound(KeyNotFound):
    """The alias exists but this key version does not (never created, or retired)."""


class WrongKey(KmsError):
    """The key version exists but failed to authenticate the wrapped DEK.

    Either the envelope was wrapped by another key (another keyring or token) or
    the wrapped DEK was altered; the two cannot be told apart, by design of AEAD.
    """


class KeyInUse(KmsError):
    """A key version still protects records, or is active, so it cannot be retired."""


class KeyAdminUnsupported(KmsError):
    """The provider's keys are not managed by admitd (dev keys, cloud KMS)."""
