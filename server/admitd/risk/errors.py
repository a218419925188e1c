"""Refusals of risk admin requests (each maps to one gRPC status in `risk.servicer`).

AdminRequestError (admitd.admin.errors)
├── InvalidRequest          malformed input                        -> INVALID_ARGUMENT
├── PreconditionFailed      e.g. override expired or already final -> FAILED_PRECONDITION
├── OverrideNotFound        no such override                       -> NOT_FOUND
└── SameApprover            dual control: approver == requester    -> PERMISSION_DENIED
"""

from __future__ import annotations

from admitd.admin.errors import AdminRequestError, InvalidRequest, PreconditionFailed

__all__ = ["InvalidRequest", "OverrideNotFound", "PreconditionFailed", "SameApprover"]


class OverrideNotFound(AdminRequestError):
    pass


class SameApprover(AdminRequestError):
    """The admin who requested an override tried to approve it."""
