"""Facts gathered before the decision (lookups happen in the service, never in the core)."""

from __future__ import annotations

from dataclasses import dataclass

from admitd.certs.identity import CertificateFacts

__all__ = ["CertificateFacts", "Facts"]


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything `decide()` may know beyond the request and the policy."""

    certificate: CertificateFacts
