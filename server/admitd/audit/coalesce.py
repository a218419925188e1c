"""Coalescing identical plain denials: the first is written at once, repeats within
`coalesce_seconds` are counted into one follow-up entry (docs/audit.md, "Coalesced denials").

Only a plain policy denial of an unprivileged request may be merged; everything
else (step-ups, risk, MFA, session life cycle, policy reloads, key custody, any
entry appended directly) is written one entry per event, always.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from admitd.audit.decision import DEVICE_ID_MAX, CapturedDecision, entry_from_captured
from admitd.audit.entry import AuditEntry, AuditEvent, Coalesced, SaltPool

if TYPE_CHECKING:  # read only as values handed in by the runtime
    from admitd.core.route import PolicySet, Route

__all__ = [
    "COALESCED_REASONS",
    "DEFAULT_PRIVILEGED_ROLES",
    "Coalescer",
    "is_privileged_route",
]

# Reason codes (admitd.core.decision.Reason values) of plain policy denials. Not here:
# `revoked` (a compromised credential in use), the fail-closed *_unavailable and
# `revocation_status_unknown` (malfunctions), MFA and step-up, risk denials.
COALESCED_REASONS = frozenset(
    {
        "missing",
        "malformed",
        "chain_too_long",
        "expired",
        "not_yet_valid",
        "untrusted",
        "missing_client_auth_eku",
        "identity_not_allowed",
        "https_required",
        "no_matching_route",
        "request_malformed",
        "session_required",
        "session_invalid",
        "session_expired",
        "token_invalid",
        "token_expired",
        "role_required",
        "scope_required",
        "condition_failed",
    }
)
# As admitd.core.mfa_rules; used until the runtime hands in the configured ones.
DEFAULT_PRIVILEGED_ROLES = frozenset({"admin", "finance", "analyst", "auditor"})
_MERGEABLE_RISK = {"", "low", "medium"}
_PRIVILEGED_SIGNAL = "privileged_without_mfa"

Key = tuple[object, ...]
Policy = Callable[[], "PolicySet"]


def is_privileged_route(route: Route | None, privileged_roles: frozenset[str]) -> bool:
    """A route is privileged when it (or any organisation's variant of it) admits only a
    privileged role, sets an MFA age, or is a recovery route. No route (unmatched) is not."""
    if route is None:
        return False
    if route.roles & privileged_roles or route.recovery:
        return True
    if route.mfa_max_age is not None or route.mfa_max_age_by_role:
        return True
    return any(is_privileged_route(v, privileged_roles) for v in route.per_organisation.values())


def _key(captured: CapturedDecision) -> Key:
    """Every field the entry would carry (time and salt aside), the certificate, and all
    that decides whether it may be merged: decisions with one key merge or not alike."""
    decision = captured.decision
    identity, user, risk = decision.identity, decision.user, decision.risk
    return (
        captured.event,
        decision.reason.value,
        decision.route,
        decision.status,
        decision.policy_version,
        decision.mfa_checked,
        decision.step_up_max_age,
        captured.source_ip,
        captured.device_id[:DEVICE_ID_MAX],
        (identity.fingerprint_sha256, identity.principal) if identity is not None else None,
        (user.user_id, user.organisation, user.session_id, user.device_id, user.roles)
        if user is not None
        else None,
        (risk.level.value, risk.signals) if risk is not None else None,
    )


@dataclass(slots=True)
class _Window:
    first: AuditEntry  # written when the window opened
    ends: float  # decision time from which a repeat opens a new window
    flush_at: float  # writer clock (monotonic) at which the follow-up entry goes out
    count: int = 0
    first_time: float = 0.0
    last_time: float = 0.0

    def add(self, at: float) -> None:
        if self.count == 0:
            self.first_time = self.last_time = at
        else:  # the clock may step back: keep the true range
            self.first_time, self.last_time = min(self.first_time, at), max(self.last_time, at)
        self.count += 1


class Coalescer:
    """Turns what was queued into the entries to write, in order. Used by the writer only."""

    def __init__(
        self,
        seconds: float,
        instance: str,
        *,
        max_windows: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._seconds, self._instance, self._max = seconds, instance, max_windows
        self._clock = clock
        self._open: OrderedDict[Key, _Window] = OrderedDict()  # in opening order
        self._ended: list[_Window] = []
        self._salts = SaltPool()
        self._policy: Policy | None = None
        self._privileged_roles = DEFAULT_PRIVILEGED_ROLES
        self._route_class: tuple[object, dict[str, bool]] = (None, {})
        self.pending = 0  # decisions counted into windows whose entry is not out yet
        self.counted = 0  # decisions counted into a follow-up entry since start (a total)

    def use_policy(self, policy: Policy, privileged_roles: frozenset[str]) -> None:
        """Where privileged routes are looked up; until then no decision is coalesced."""
        self._policy, self._privileged_roles = policy, privileged_roles

    def entries(
        self, items: Iterable[AuditEntry | CapturedDecision], counted: list[int] | None = None
    ) -> list[AuditEntry]:
        """Entries for `items` in arrival order; repeats are counted instead (their
        positions in `items` appended to `counted`), and windows that ended meanwhile put
        their follow-up entry before what comes after them."""
        out: list[AuditEntry] = []
        enabled = self._seconds > 0 and self._policy is not None
        for position, item in enumerate(items):
            if isinstance(item, AuditEntry):
                out.append(item)
                continue
            key = _key(item) if enabled else None
            if key is not None and self._counted(key, item.time):
                if counted is not None:
                    counted.append(position)
                continue
            out += self._follow_ups()  # a window this item closed goes first
            entry = entry_from_captured(item, self._instance, self._salts.take())
            out.append(entry)
            # With every window slot taken, new sources are written one by one until some end.
            if key is not None and len(self._open) < self._max and self._mergeable(item):
                ends, flush_at = item.time + self._seconds, self._clock() + self._seconds
                self._open[key] = _Window(entry, ends, flush_at)
        return out

    def due(self, *, everything: bool = False) -> list[AuditEntry]:
        """Follow-up entries of windows that have ended (all open ones, at close)."""
        now = self._clock()
        while self._open:
            key, window = next(iter(self._open.items()))
            if not everything and window.flush_at > now:
                break
            del self._open[key]
            self._ended.append(window)
        return self._follow_ups()

    def counts_so_far(self) -> list[AuditEntry]:
        """A follow-up entry for what each open window counted since its last one; the
        windows stay open (durable answers: a repeat is answered once its count is out)."""
        for window in self._open.values():
            if window.count:
                self._ended.append(replace(window))
                window.count = 0
        return self._follow_ups()

    def _counted(self, key: Key, at: float) -> bool:
        """A repeat inside an open window (only mergeable decisions open one: same key,
        same verdict) is counted; one after the window's end closes it."""
        window = self._open.get(key)
        if window is None:
            return False
        if at < window.ends:
            window.add(at)
            self.pending += 1
            self.counted += 1
            return True
        del self._open[key]  # the window ended: its follow-up goes before what follows
        self._ended.append(window)
        return False

    def _follow_ups(self) -> list[AuditEntry]:
        ended, self._ended = self._ended, []
        out = []
        for window in ended:
            if window.count:
                self.pending -= window.count
                out.append(
                    replace(
                        window.first,
                        time=window.first_time,
                        salt=self._salts.take(),
                        coalesced=Coalesced(window.count, window.last_time),
                    )
                )
        return out

    def _mergeable(self, captured: CapturedDecision) -> bool:
        decision = captured.decision
        if captured.event != AuditEvent.DECISION_DENIED:
            return False
        if decision.reason.value not in COALESCED_REASONS:
            return False
        risk, user = decision.risk, decision.user
        if risk is not None and (
            risk.level.value not in _MERGEABLE_RISK or _PRIVILEGED_SIGNAL in risk.signals
        ):
            return False
        if decision.mfa_checked or decision.step_up_max_age is not None:
            return False
        if user is not None and user.roles & self._privileged_roles:
            return False
        return not self._privileged_route(decision.route, decision.policy_version)

    def _privileged_route(self, name: str, version: str) -> bool:
        if not name:
            return False
        policy = self._policy() if self._policy is not None else None
        if policy is None or policy.version != version:
            return True  # decided under another policy (a reload meanwhile): not merged
        seen, known = self._route_class
        if seen is not policy:  # a reload: classify the new policy's routes afresh
            known = {}
            self._route_class = (policy, known)
        found = known.get(name)
        if found is None:
            route = policy.route_named(name)
            # A name the live policy does not know: treat it as privileged (not merged).
            found = route is None or is_privileged_route(route, self._privileged_roles)
            known[name] = found
        return found
