"""Refusals of admin API requests, each mapped to one gRPC status by the servicer.

AdmitdError
└── AdminRequestError        the request cannot be carried out as asked
    ├── InvalidRequest       malformed input             -> INVALID_ARGUMENT
    ├── PreconditionFailed   e.g. privileged role, no 2FA -> FAILED_PRECONDITION
    └── SessionNotFound      revoked, expired or unknown  -> NOT_FOUND
AdminCallFailed              the CLI's call failed (any status): user-facing
"""

from __future__ import annotations

from admitd.errors import AdmitdError

__all__ = [
    "AdminCallFailed",
    "AdminRequestError",
    "InvalidRequest",
    "PreconditionFailed",
    "SessionNotFound",
]


class AdminRequestError(AdmitdError):
    """Base of refusals; the message goes back to the caller, so it holds no secret."""


class InvalidRequest(AdminRequestError):
    pass


class PreconditionFailed(AdminRequestError):
    pass


class SessionNotFound(AdminRequestError):
    pass


class AdminCallFailed(AdmitdError):
    """An admin API call from the CLI failed; the message names the status and why."""
