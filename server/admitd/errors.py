"""Exceptions for malfunctions; denials are values (see `admitd.core.decision`).

    AdmitdError                 anything admitd itself cannot handle
    ├── ConfigError             bad configuration or policy: names file, key and fix
    ├── StoreUnavailable        the session/state store cannot be reached
    ├── KmsError                a key provider failed or refused
    │   └── KeyNotFound         the requested key alias/version does not exist
    └── EnvelopeError           a sealed record cannot be opened or is malformed

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
    """The state store (Redis) did not answer in time or refused the command."""


class KmsError(AdmitdError):
    """A key-management provider failed, refused, or is misconfigured."""


class KeyNotFound(KmsError):
    """The key alias or key version asked for is not held by the provider."""


class EnvelopeError(AdmitdError):
    """A sealed envelope is malformed, tampered with, or bound to another context."""
