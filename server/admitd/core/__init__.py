"""The pure decision core: typed request context, facts, and `decide()`."""

from __future__ import annotations

from admitd.core.context import RequestContext
from admitd.core.decide import decide
from admitd.core.decision import Decision, Reason
from admitd.core.facts import CertificateFacts, Facts

__all__ = ["CertificateFacts", "Decision", "Facts", "Reason", "RequestContext", "decide"]
