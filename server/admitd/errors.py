"""Exceptions for malfunctions; denials are values (see `admitd.core.decision`).

Every exception admitd raises on purpose, wherever the class is defined:

    AdmitdError                     anything admitd itself cannot handle
    ├── ConfigError                 bad configuration or policy: names file, key and fix
    ├── StoreUnavailable            the state store (Redis) cannot serve the command now
    │   ├── StoreRefused            Redis refused it, and waiting will not help (see below)
    │   └── AuditStreamCorrupted    (audit.stream) the stream's tail cannot be chained onto
    ├── KmsError                    a key provider failed, refused, or is misconfigured
    │   ├── KeyNotFound             the requested key alias/version does not exist
    │   │   ├── AliasNotFound       (kms.errors) no such alias at this provider
    │   │   └── KeyVersionNotFound  (kms.errors) never created, or retired
    │   ├── WrongKey                (kms.errors) the version did not unwrap the data key
    │   ├── KeyInUse                (kms.errors) a version still seals records
    │   └── KeyAdminUnsupported     (kms.errors) the provider's keys are not admitd's to manage
    ├── OfflineNotConfirmed         (kms.cli) an offline key command run without --offline
    ├── _Incomplete                 (custody.apply) a re-encryption pass left records behind
    ├── EnvelopeError               a sealed record cannot be opened or is malformed
    │   ├── MalformedEnvelope       (envelope.errors) not an admitd envelope
    │   │   └── TruncatedEnvelope   (envelope.errors) the bytes end too early
    │   ├── UnknownEnvelopeVersion  (envelope.errors) a format this build does not read
    │   ├── ContextMismatch         (envelope.errors) sealed for another record
    │   └── TamperedEnvelope        (envelope.errors) the envelope was altered
    ├── AdminRequestError           (admin.errors) an admin request cannot be done as asked
    │   ├── InvalidRequest          malformed input                 -> INVALID_ARGUMENT
    │   ├── PreconditionFailed      e.g. a privileged role, no 2FA  -> FAILED_PRECONDITION
    │   │   └── MfaRefused          (custody.proof) no fresh passkey for a key change
    │   ├── SessionNotFound         revoked, expired or unknown     -> NOT_FOUND
    │   ├── OverrideNotFound        (risk.errors) no such override  -> NOT_FOUND
    │   ├── SameApprover            (risk.errors) dual control      -> PERMISSION_DENIED
    │   ├── ChangeNotFound          (custody.errors) no such key change -> NOT_FOUND
    │   └── SameCustodian           (custody.errors) dual control   -> PERMISSION_DENIED
    └── AdminCallFailed             (admin.errors) the CLI's admin call failed

Each adapter translates its library's exceptions at its boundary, once: redis-py's
in `admitd.sessions.redis_errors` (applied by the client `client_from_url` builds),
so no Redis exception reaches the code above it. `StoreRefused` is still a
`StoreUnavailable` (every caller fails closed, spools or answers 503 the same way);
its own class tells an operator that a reconnect will not cure it: wrong credentials
or ACL, a wrong key type, a script error.

The Check service catches `AdmitdError` in one place and answers a deliberate
fail-closed denial; anything else is a bug and is answered the same way, logged
with its traceback on the server side only.
"""

from __future__ import annotations

__all__ = [
    "AdmitdError",
    "ConfigError",
    "EnvelopeError",
    "KeyNotFound",
    "KmsError",
    "StoreRefused",
    "StoreUnavailable",
]


class AdmitdError(Exception):
    """Base class of every error admitd raises on purpose."""


class ConfigError(AdmitdError):
    """Configuration or policy is invalid.

    The message always names where (file, line when known, dotted key), what is
    wrong and what is allowed, so an operator can fix it without reading code.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        key: str | None = None,
        line: int | None = None,
        fix: str | None = None,
    ) -> None:
        self.file = file
        self.key = key
        self.line = line
        self.fix = fix
        self.detail = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = self.file or "<config>"
        if self.line is not None:
            where += f":{self.line}"
        if self.key:
            where += f": {self.key}"
        text = f"{where}: {self.detail}"
        if self.fix:
            text += f" ({self.fix})"
        return text


class StoreUnavailable(AdmitdError):
    """The state store (Redis) did not answer in time or refused the command.

    The message names the Redis operation and the error's kind, never the URL,
    the password or the command's arguments.
    """


class StoreRefused(StoreUnavailable):
    """Redis answered with an error that retrying will not cure: a bug, damaged data,
    or wrong credentials/ACL. Callers treat it as `StoreUnavailable` (fail closed)."""


class KmsError(AdmitdError):
    """A key-management provider failed, refused, or is misconfigured."""


class KeyNotFound(KmsError):
    """The key alias or key version asked for is not held by the provider."""


class EnvelopeError(AdmitdError):
    """A sealed envelope is malformed, tampered with, or bound to another context."""
