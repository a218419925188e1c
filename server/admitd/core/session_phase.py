"""The session phase of a decision: session present and live, MFA fresh enough, or step up."""

from __future__ import annotations

from dataclasses import dataclass

from admitd.core.context import RequestContext
from admitd.core.decision import Reason
from admitd.core.facts import Facts
from admitd.core.identity import User, UserState
from admitd.core.mfa_requirement import mfa_requirement
from admitd.core.mfa_rules import MfaRules, is_fresh
from admitd.core.route import Route, SessionRequirement

__all__ = ["SessionVerdict", "is_browser_navigation", "session_verdict"]

_REJECTED = {
    UserState.NOT_PRESENTED: Reason.SESSION_REQUIRED,
    UserState.MALFORMED: Reason.SESSION_INVALID,
    UserState.UNKNOWN: Reason.SESSION_INVALID,
    UserState.EXPIRED: Reason.SESSION_EXPIRED,
}
# A JWT bearer token's problems have their own codes: the client fixes them at its IdP.
_TOKEN_REJECTED = {
    UserState.MALFORMED: Reason.TOKEN_INVALID,
    UserState.UNKNOWN: Reason.TOKEN_INVALID,
    UserState.EXPIRED: Reason.TOKEN_EXPIRED,
    UserState.UNAVAILABLE: Reason.IDENTITY_PROVIDER_UNAVAILABLE,
}


@dataclass(frozen=True, slots=True)
class SessionVerdict:
    """`reason` is None when the phase passes; `session` is the live session, if any."""

    reason: Reason | None
    user: User | None = None
    mfa_checked: bool = False
    max_age: int | None = None


def session_verdict(route: Route | None, facts: Facts, rules: MfaRules) -> SessionVerdict:
    if route is None or route.session is SessionRequirement.NONE:
        return SessionVerdict(None)
    lookup = facts.user
    if lookup.carrier == "jwt" and lookup.state in _TOKEN_REJECTED:
        # Presented and refused: a bad token is never treated as "no credential".
        return SessionVerdict(_TOKEN_REJECTED[lookup.state])
    if lookup.state is UserState.UNAVAILABLE:
        # Fail closed: without the store we cannot know the session was not revoked.
        return SessionVerdict(Reason.SESSION_STORE_UNAVAILABLE)
    if lookup.state is not UserState.ACTIVE or lookup.user is None:
        if route.session is SessionRequirement.OPTIONAL:
            return SessionVerdict(None)
        return SessionVerdict(_REJECTED.get(lookup.state, Reason.SESSION_INVALID))
    return _mfa_verdict(route, lookup.user, facts.now, rules)


def _mfa_verdict(route: Route, user: User, now: float, rules: MfaRules) -> SessionVerdict:
    if rules.is_privileged(user.roles) and not user.factors:
        # A privileged user without an active factor could never step up: refuse outright.
        return SessionVerdict(Reason.MFA_ENROLLMENT_REQUIRED, user, mfa_checked=True)
    max_age = _required_max_age(route, user, rules)
    if max_age is None:
        return SessionVerdict(None, user)
    if not is_fresh(user.mfa_age(now), max_age):
        return SessionVerdict(Reason.MFA_STEP_UP_REQUIRED, user, mfa_checked=True, max_age=max_age)
    return SessionVerdict(None, user, mfa_checked=True, max_age=max_age)


def _required_max_age(route: Route, user: User, rules: MfaRules) -> int | None:
    requirement = route.mfa or mfa_requirement(route, rules)
    return requirement.max_age_for(user.roles)


def is_browser_navigation(ctx: RequestContext) -> bool:
    """A top-level page load that can follow a redirect (never an XHR or fetch).

    Fetch metadata (`Sec-Fetch-Mode`) decides when present; older clients are
    judged by a GET that accepts HTML and is not marked as XMLHttpRequest.
    """
    mode = ctx.header("sec-fetch-mode")
    if mode:
        return mode == "navigate"
    if (
        ctx.method not in ("GET", "HEAD")
        or ctx.header("x-requested-with").lower() == "xmlhttprequest"
    ):
        return False
    return "text/html" in ctx.header("accept")
