"""Gather facts for a request, call the pure core, and apply what the core cannot know."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from admitd.certs.client import ClientCertificates
from admitd.core.context import RequestContext
from admitd.core.decide import decide
from admitd.core.decision import Decision, Reason
from admitd.core.facts import Facts
from admitd.core.identity import CertificateFacts, UserState
from admitd.core.mfa_requirement import with_mfa_requirements
from admitd.core.mfa_rules import MfaRules
from admitd.core.outcomes import deny, with_step_up_url
from admitd.core.risk_phase import moves_risk_history
from admitd.core.route import PolicySet, Route, StepUpAt
from admitd.core.session_phase import is_browser_navigation
from admitd.errors import StoreUnavailable
from admitd.identity import NOBODY, Found, IdentitySource
from admitd.risk.gatherer import RiskGatherer, RiskSighting
from admitd.sessions.config import SessionsConfig
from admitd.sessions.identity import SessionIdentity
from admitd.sessions.memory_store import MemorySessionStore
from admitd.sessions.store import SessionStore
from admitd.web.return_to import STEP_UP_PATH

__all__ = ["Engine", "IdpStepUpUrl", "SignInUrl", "StepUpUrl"]

# (request, now, the step-up decision): the page knows how recent MFA must be, and why.
StepUpUrl = Callable[[RequestContext, float, Decision], str]
SignInUrl = Callable[[RequestContext, float], str]
IdpStepUpUrl = Callable[[RequestContext, float, int], str]  # ..., max_age
# Envoy per-route `typed_per_filter_config` ext_authz `check_settings.context_extensions`.
ROUTE_EXTENSION = "admitd_route"
_NOT_OURS = (UserState.NOT_PRESENTED, UserState.MALFORMED)
# A browser without a live session signs in again when a sign-in is configured.
_SIGN_IN_AGAIN = frozenset(
    {Reason.SESSION_REQUIRED, Reason.SESSION_INVALID, Reason.SESSION_EXPIRED}
)


def _bearer_found(found: Found) -> bool:
    # The lookup already read a well-formed bearer token of this source: no second parse.
    user = found.user
    return user.carrier == "bearer" and user.state not in _NOT_OURS


def _too_late(ctx: RequestContext, policy: PolicySet, route: Route) -> Decision:
    detail = "Envoy's deadline passed before the session lookup"
    return deny(ctx, policy, Reason.AUTHORIZATION_UNAVAILABLE, route=route, log_detail=detail)


def _plain_step_up_url(ctx: RequestContext, now: float, decision: Decision) -> str:
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
        identity: IdentitySource | None = None,
        sessions: SessionsConfig | None = None,
        rules: MfaRules | None = None,
        step_up_url: StepUpUrl | None = None,
        sign_in_url: SignInUrl | None = None,
        idp_step_up_url: IdpStepUpUrl | None = None,
        default_step_up: StepUpAt = StepUpAt.ADMITD,
        risk: RiskGatherer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.risk = risk
        self.rules = rules or MfaRules()
        self._policy = with_mfa_requirements(policy, self.rules)
        self.certificates = certificates
        self.sessions = sessions or SessionsConfig()
        self.store: SessionStore = store or MemorySessionStore()
        self.identity = identity or SessionIdentity(self.store, self.sessions.cookie_name)
        self._step_up_url = step_up_url or _plain_step_up_url
        self._sign_in_url = sign_in_url  # set when `oidc:` is: browsers sign in at the IdP
        self._idp_step_up_url = idp_step_up_url  # ... and may step up there
        self._default_step_up = default_step_up
        self._clock = clock

    @property
    def policy(self) -> PolicySet:
        return self._policy

    def replace_policy(self, policy: PolicySet) -> None:
        self._policy = with_mfa_requirements(policy, self.rules)

    async def check(
        self, ctx: RequestContext, *, deadline: float | None = None
    ) -> tuple[Decision, Facts]:
        """Facts (reads only), then the pure decision, then what it causes.

        `deadline` (time.monotonic()) is when Envoy stops waiting: past it, no Redis
        lookup is started for an answer nobody will read; the Check fails closed.
        """
        now = self._clock()
        policy = self._policy
        selected = ctx.context_extensions.get(ROUTE_EXTENSION)
        route = policy.route_named(selected) if selected else policy.route_for(ctx)
        certificate = self._certificate(ctx, route, now)
        if selected and route is None:
            # Envoy names a route this policy does not have: a config mismatch, so deny.
            return deny(ctx, policy, Reason.NO_MATCHING_ROUTE), Facts(certificate, now=now)
        found = NOBODY
        if route is not None and route.consults_session:  # organisation variants too
            if deadline is not None and time.monotonic() >= deadline:
                return _too_late(ctx, policy, route), Facts(certificate, now=now)
            found = await self.identity.lookup(ctx, now)
        sighting, risk_unavailable = None, False
        if self.risk is not None and found.user.user is not None:  # no await otherwise
            sighting, risk_unavailable = await self._risk(ctx, found, now)
        facts = Facts(
            certificate,
            found.user,
            now,
            sighting.assessment if sighting is not None else None,
            risk_unavailable=risk_unavailable,
            credential_cookie=self.identity.cookie_name,
            credential_bearer=_bearer_found(found) or self.identity.carries_own_bearer(ctx),
        )
        decision = decide(ctx, policy, facts, self.rules, route)
        self._record_risk(found, sighting, decision, now)
        if not decision.allowed:
            decision = self._for_the_client(ctx, route, decision, now)
        return decision, facts

    def _for_the_client(
        self, ctx: RequestContext, route: Route | None, decision: Decision, now: float
    ) -> Decision:
        """Where a denial sends its client: a browser to step up or sign in (302), or to a
        page that explains it; an API client gets the same reason as JSON."""
        browser = is_browser_navigation(ctx)
        if decision.reason is Reason.MFA_STEP_UP_REQUIRED:
            url = self._step_up_location(ctx, route, decision, now)
            return with_step_up_url(decision, url, browser=browser)
        if browser and self._sign_in_url is not None and decision.reason in _SIGN_IN_AGAIN:
            # Still 401; the redirect makes it a 302 for the browser only.
            return with_step_up_url(decision, self._sign_in_url(ctx, now), browser=True)
        return replace(decision, page=True) if browser else decision

    def _step_up_location(
        self, ctx: RequestContext, route: Route | None, decision: Decision, now: float
    ) -> str:
        """admitd's step-up page, or the IdP's login with `max_age` when the route (as the
        user's organisation sees it) or the deployment says so."""
        max_age = decision.step_up_max_age
        if self._idp_step_up_url is None or route is None or not max_age:
            return self._step_up_url(ctx, now, decision)
        user = decision.user
        variant = route.for_organisation(user.organisation) if user is not None else route
        if (variant.step_up or self._default_step_up) is StepUpAt.IDP:
            return self._idp_step_up_url(ctx, now, max_age)
        return self._step_up_url(ctx, now, decision)

    def _certificate(
        self, ctx: RequestContext, route: Route | None, now: float
    ) -> CertificateFacts:
        if route is not None and route.public:
            # A public route admits everyone, so it never parses what any client may send.
            return CertificateFacts.not_examined()
        return self.certificates.facts_for(ctx, datetime.fromtimestamp(now, UTC))

    async def _risk(
        self, ctx: RequestContext, found: Found, now: float
    ) -> tuple[RiskSighting | None, bool]:
        """The live user's risk sighting, whatever the identity source; (None, True) when it
        cannot be assessed (fail closed)."""
        user = found.user.user
        if self.risk is None or user is None:
            return None, False
        try:
            return await self.risk.assess(ctx, user, now, found.risk_state), False
        except StoreUnavailable:
            return None, True

    def _record_risk(
        self, found: Found, sighting: RiskSighting | None, decision: Decision, now: float
    ) -> None:
        user = found.user.user
        if self.risk is None or sighting is None or user is None:
            return
        # After the decision: only an admission at a sufficient assurance moves the history.
        admitted = moves_risk_history(decision, user, now, self.rules)
        self.risk.record_outcome(user, sighting, admitted=admitted)

    async def flush_last_seen(self) -> None:
        """Write batched last-seen times (off the hot path); kept for the next try on failure."""
        await self.identity.flush_last_seen()
