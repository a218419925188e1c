"""Gather facts for a request, call the pure core, and apply what the core cannot know."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from admitd.certs.client import ClientCertificates
from admitd.certs.identity import CertificateFacts
from admitd.core.context import RequestContext
from admitd.core.decide import decide
from admitd.core.decision import Decision, Reason
from admitd.core.facts import Facts
from admitd.core.outcomes import deny, with_step_up_url
from admitd.core.session_phase import is_browser_navigation
from admitd.errors import StoreUnavailable
from admitd.policy.model import PolicySet
from admitd.risk.gatherer import RiskGatherer
from admitd.sessions.carrier import session_token_from_request
from admitd.sessions.config import SessionsConfig
from admitd.sessions.memory_store import MemorySessionStore
from admitd.sessions.model import SessionLookup, SessionState
from admitd.sessions.store import SessionStore
from admitd.sessions.tokens import SessionRef, parse_session_token
from admitd.web.return_to import STEP_UP_PATH

__all__ = ["Engine", "StepUpUrl"]

StepUpUrl = Callable[[RequestContext, float], str]
# Envoy per-route `typed_per_filter_config` ext_authz `check_settings.context_extensions`.
ROUTE_EXTENSION = "admitd_route"
_NOT_PRESENTED = SessionLookup(SessionState.NOT_PRESENTED)


def _plain_step_up_url(ctx: RequestContext, now: float) -> str:
    # Without a signing key there is no return_to: the page sends the browser to "/".
    return STEP_UP_PATH


class Engine:
    """One `check()` per request. A policy reload swaps one reference, so a request
    in flight finishes with the policy it started with."""

    def __init__(
        self,
        policy: PolicySet,
        certificates: ClientCertificates,
        *,
        store: SessionStore | None = None,
        sessions: SessionsConfig | None = None,
        step_up_url: StepUpUrl | None = None,
        risk: RiskGatherer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.risk = risk
        self._policy = policy
        self.certificates = certificates
        self.store: SessionStore = store or MemorySessionStore()
        self.sessions = sessions or SessionsConfig()
        self._step_up_url = step_up_url or _plain_step_up_url
        self._clock = clock
        self._seen: dict[SessionRef, float] = {}

    @property
    def policy(self) -> PolicySet:
        return self._policy

    def replace_policy(self, policy: PolicySet) -> None:
        self._policy = policy

    async def check(self, ctx: RequestContext) -> tuple[Decision, Facts]:
        now = self._clock()
        policy = self._policy
        selected = ctx.context_extensions.get(ROUTE_EXTENSION)
        route = policy.route_named(selected) if selected else policy.route_for(ctx)
        # A public route admits everyone, so it never parses what any client may send.
        certificate = (
            CertificateFacts.not_examined()
            if route is not None and route.public
            else self.certificates.facts_for(ctx, datetime.fromtimestamp(now, UTC))
        )
        if selected and route is None:
            # Envoy names a route this policy does not have: a config mismatch, so deny.
            return deny(ctx, policy, Reason.NO_MATCHING_ROUTE), Facts(certificate, now=now)
        session = _NOT_PRESENTED
        if route is not None and route.consults_session:  # organisation variants too
            session = await self._lookup(ctx, now)
        sighting, risk_unavailable = None, False
        if self.risk is not None and session.session is not None:
            try:
                sighting = await self.risk.assess(ctx, session.session, now)
            except StoreUnavailable:
                risk_unavailable = True
        risk = sighting.assessment if sighting is not None else None
        facts = Facts(certificate, session, now, risk, risk_unavailable=risk_unavailable)
        decision = decide(ctx, policy, facts, self.sessions, route)
        if self.risk is not None and sighting is not None and session.session is not None:
            # After the decision: only an admission without a step-up moves the history.
            admitted = decision.allowed and decision.shadow_reason is None
            self.risk.record_outcome(session.session, sighting, admitted=admitted)
        if decision.reason is Reason.MFA_STEP_UP_REQUIRED:
            browser = is_browser_navigation(ctx)
            decision = with_step_up_url(decision, self._step_up_url(ctx, now), browser=browser)
        return decision, facts

    async def _lookup(self, ctx: RequestContext, now: float) -> SessionLookup:
        token, carrier = session_token_from_request(ctx, self.sessions.cookie_name)
        if not token:
            return _NOT_PRESENTED
        ref = parse_session_token(token)
        if ref is None:
            return SessionLookup.of(SessionState.MALFORMED, carrier)
        try:
            session = await self.store.get(ref)
        except StoreUnavailable:
            return SessionLookup.of(SessionState.UNAVAILABLE, carrier)
        if session is None:
            return SessionLookup.of(SessionState.UNKNOWN, carrier)
        if session.is_expired(now):
            return SessionLookup.of(SessionState.EXPIRED, carrier)
        self._seen[ref] = now
        return SessionLookup(SessionState.ACTIVE, session, carrier)

    async def flush_last_seen(self) -> None:
        """Write batched last-seen times (off the hot path); kept for the next try on failure."""
        if not self._seen:
            return
        seen, self._seen = self._seen, {}
        try:
            await self.store.touch(seen)
        except StoreUnavailable:
            self._seen = {**seen, **self._seen}
