"""Gather facts for a request, then call the pure core. Holds the live policy."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from admitd.certs.client import ClientCertificates
from admitd.core.context import RequestContext
from admitd.core.decide import decide
from admitd.core.decision import Decision
from admitd.core.facts import Facts
from admitd.policy.model import PolicySet

__all__ = ["Engine"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Engine:
    """One `check()` per request. A policy reload swaps one reference, so a request
    in flight finishes with the policy it started with."""

    def __init__(
        self,
        policy: PolicySet,
        certificates: ClientCertificates,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._policy = policy
        self.certificates = certificates
        self._clock = clock

    @property
    def policy(self) -> PolicySet:
        return self._policy

    def replace_policy(self, policy: PolicySet) -> None:
        self._policy = policy

    def check(self, ctx: RequestContext) -> tuple[Decision, Facts]:
        policy = self._policy
        facts = Facts(certificate=self.certificates.facts_for(ctx, self._clock()))
        return decide(ctx, policy, facts), facts
