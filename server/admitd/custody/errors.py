"""Refusals of key custody requests (each maps to one gRPC status in `custody.servicer`).

AdminRequestError (admitd.admin.errors)
├── InvalidRequest          malformed input                          -> INVALID_ARGUMENT
├── PreconditionFailed      expired, already approved, stale passkey -> FAILED_PRECONDITION
├── ChangeNotFound          no such change                           -> NOT_FOUND
└── SameCustodian           dual control: approver is the requester  -> PERMISSION_DENIED
"""

from __future__ import annotations

from admitd.admin.errors import AdminRequestError

__all__ = ["ChangeNotFound", "SameCustodian"]


class ChangeNotFound(AdminRequestError):
    pass


class SameCustodian(AdminRequestError):
    """The approver is the requester: the same certificate, or the same admitd user."""
