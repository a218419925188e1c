"""Device risk on the hot path: telemetry from the request, history read with the session.

A Check whose device, IP and location are unchanged costs no Redis round trip:
the history came in the session pipeline and the baseline is cached per
organisation (a miss is one read per organisation per `baseline_cache_seconds`).

Assessing only reads. What the attempt changes is recorded after the decision,
in the background, by `record_outcome`: only an admitted attempt moves the
history, so a refused one is judged the same way when it is repeated.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from admitd.core.context import RequestContext
from admitd.core.identity import User
from admitd.core.mfa_rules import MfaRules
from admitd.errors import AdmitdError
from admitd.risk.baseline import BaselineStore
from admitd.risk.config import RiskConfig
from admitd.risk.engine import assess
from admitd.risk.geo import GEO_HEADERS, GeoLocator
from admitd.risk.metrics import RiskMetrics
from admitd.risk.model import RiskAssessment, RiskHistory, Telemetry
from admitd.risk.reputation import ReputationList
from admitd.risk.reuse import Assessed, RecentAssessments, reuse_key
from admitd.risk.state import RiskStateStore, needs_record, risk_history_from_fields
from admitd.risk.telemetry import telemetry_from_request
from admitd.sessions.model import Session, user_from_session
from admitd.sessions.tokens import user_tag

__all__ = ["RiskGatherer", "RiskSighting"]

log = logging.getLogger(__name__)

# Re-record an unchanged sighting this often, so travel speed is measured from a recent point.
_REFRESH_SECONDS = 900.0
# Refused sightings recorded recently, per replica: a client repeating a refused
# request must not turn each retry into a sealed write.
_RECENT_MAX = 10_000


@dataclass(frozen=True, slots=True)
class RiskSighting:
    """One attempt as the risk engine saw it: what it read, and what it concluded."""

    telemetry: Telemetry
    history: RiskHistory
    assessment: RiskAssessment


class RiskGatherer:
    def __init__(
        self,
        config: RiskConfig,
        rules: MfaRules,
        *,
        reputation: ReputationList,
        geo: GeoLocator,
        baselines: BaselineStore,
        state: RiskStateStore,
        metrics: RiskMetrics,
        invalidate_user: Callable[[str], Awaitable[None]],
    ) -> None:
        self._config, self._rules = config, rules
        self._reputation, self._geo, self._baselines = reputation, geo, baselines
        self._state, self._metrics, self._invalidate_user = state, metrics, invalidate_user
        self._recent: dict[tuple[str, ...], float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._reused = RecentAssessments()
        # The headers the telemetry reads: the reuse key holds their raw values.
        self._header_names = (
            config.device_id_header,
            "user-agent",
            config.anomaly_score_header,
            *GEO_HEADERS,
        )

    async def record_login(
        self, session: Session, user_agent: str, ip: str, now: float
    ) -> RiskAssessment:
        """The attempt a new session stands for (telemetry reported by the login service):
        assessed against the user's history and recorded, before the session is used."""
        headers = {self._config.device_id_header: session.device_id, "user-agent": user_agent}
        ctx = RequestContext(
            method="POST",
            scheme="https",
            host="",
            path="/login",
            headers=headers,
            source_address=ip,
        )
        history = await self._state.history(session.user_id)
        sighting = await self._assess(ctx, user_from_session(session), history, now)
        self._metrics.observe(sighting.assessment)
        # Only a login that carried MFA vouches for its device and place; any other
        # waits, as a refused Check does, for the session's first MFA verification.
        await self._state.record(
            session.user_id,
            session.organisation,
            sighting.telemetry,
            sighting.assessment,
            admitted=session.mfa_verified_at is not None,
            session_id=session.session_id,
        )
        return sighting.assessment

    async def assess(
        self,
        ctx: RequestContext,
        user: User,
        now: float,
        risk_state: Mapping[str, str] | None = None,
    ) -> RiskSighting:
        """Reads only: `risk_state` when the identity source read it with the user (the
        session pipeline), else one read of the user's history. Raises StoreUnavailable
        when the history or the organisation's baseline must be read and cannot.
        An unchanged attempt within a second reuses the last assessment (risk.reuse)."""
        if risk_state is None:
            return await self._assess(ctx, user, await self._state.history(user.user_id), now)
        baseline = self._baselines.cached(user.organisation)
        key = reuse_key(
            user,
            ctx.headers,
            ctx.source_address,
            self._header_names,
            privileged=self._rules.is_privileged(user.roles),
            mfa_fresh=self._rules.is_fresh_for_roles(user.roles, user.mfa_age(now)),
            reputation_generation=self._reputation.generation,
        )
        if baseline is not None:
            reused = self._reused.get(key, risk_state, baseline, now)
            if reused is not None:
                return RiskSighting(*reused)
        sighting = await self._assess(ctx, user, risk_history_from_fields(risk_state), now)
        if baseline is None:
            baseline = self._baselines.cached(user.organisation)  # now read, unless it failed
        if baseline is not None:
            self._reused.put(key, risk_state, baseline, _parts(sighting))
        return sighting

    def record_outcome(self, session: User, sighting: RiskSighting, *, admitted: bool) -> None:
        """After the decision: record the attempt in the background when it changed
        anything. `admitted` is True only for a Check allowed without a step-up."""
        telemetry, history = sighting.telemetry, sighting.history
        if not needs_record(telemetry, history, refresh_seconds=_REFRESH_SECONDS):
            return
        key = _sighting_key(session, telemetry, admitted)
        last = self._recent.get(key)
        if last is not None and telemetry.at - last < _REFRESH_SECONDS:
            return  # the same attempt again (a retry, or one still being written)
        self._remember(key, telemetry.at)
        # One authentication attempt from a new device or place: count it and record it.
        self._metrics.observe(sighting.assessment)
        task = asyncio.create_task(self._record(key, session, sighting, admitted))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def promote_pending(self, tag: str, session_id: str, device_id: str) -> None:
        """The session verified MFA from `device_id`: what its refused attempt from that
        device saw becomes known. Nothing without a device ID (it names no device)."""
        if device_id and await self._state.promote_pending(tag, session_id, device_id):
            await self._invalidate_user(tag)

    def _telemetry(self, ctx: RequestContext, now: float) -> Telemetry:
        return telemetry_from_request(
            ctx.headers,
            ctx.source_address,
            now=now,
            trusted_geo_headers=self._config.trusted_geo_headers,
            device_id_header=self._config.device_id_header,
            anomaly_score_header=self._config.anomaly_score_header,
            locator=self._geo,
        )

    async def _assess(
        self, ctx: RequestContext, session: User, history: RiskHistory, now: float
    ) -> RiskSighting:
        telemetry = self._telemetry(ctx, now)
        baseline = self._baselines.cached(session.organisation) or await self._baselines.get(
            session.organisation
        )
        assessment = assess(
            telemetry,
            history,
            baseline,
            privileged=self._rules.is_privileged(session.roles),
            mfa_fresh=self._rules.is_fresh_for_roles(session.roles, session.mfa_age(now)),
            reputation_hit=self._reputation.contains(telemetry.ip),
            config=self._config,
        )
        return RiskSighting(telemetry, history, assessment)

    def _remember(self, key: tuple[str, ...], at: float) -> None:
        if len(self._recent) >= _RECENT_MAX:
            del self._recent[next(iter(self._recent))]
        self._recent[key] = at

    async def _record(
        self, key: tuple[str, ...], session: User, sighting: RiskSighting, admitted: bool
    ) -> None:
        try:
            await self._state.record(
                session.user_id,
                session.organisation,
                sighting.telemetry,
                sighting.assessment,
                admitted=admitted,
                session_id=session.session_id,
            )
            if admitted:
                # The history rides in every replica's cached session: drop those copies.
                await self._invalidate_user(user_tag(session.user_id))
        except AdmitdError as exc:
            self._recent.pop(key, None)  # retried on the next request
            log.warning(
                "device telemetry not recorded (%s); it will be retried on the next request", exc
            )

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self._geo.close()


def _parts(sighting: RiskSighting) -> Assessed:
    return sighting.telemetry, sighting.history, sighting.assessment


def _sighting_key(session: User, telemetry: Telemetry, admitted: bool) -> tuple[str, ...]:
    geo = telemetry.geo
    place = "" if geo is None else f"{geo.lat:.4f},{geo.lon:.4f}"
    return (session.session_id, telemetry.device_id, telemetry.ip, place, str(admitted))
