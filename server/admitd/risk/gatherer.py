"""Device risk on the hot path: telemetry from the request, history read with the session.

A Check whose device, IP and location are unchanged costs no Redis round trip:
the history came in the session pipeline and the baseline is cached per
organisation (a miss is one read per organisation per `baseline_cache_seconds`).
Recording a changed device or place happens in the background.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from admitd.core.context import RequestContext
from admitd.errors import AdmitdError
from admitd.risk.baseline import BaselineStore
from admitd.risk.config import RiskConfig
from admitd.risk.engine import assess
from admitd.risk.geo import GeoLocator
from admitd.risk.metrics import RiskMetrics
from admitd.risk.model import RiskAssessment, RiskHistory, Telemetry
from admitd.risk.reputation import ReputationList
from admitd.risk.state import RiskStateStore, needs_record, risk_history_from_fields
from admitd.risk.telemetry import telemetry_from_request
from admitd.sessions.config import SessionsConfig
from admitd.sessions.model import Session
from admitd.sessions.tokens import user_tag

__all__ = ["RiskGatherer"]

log = logging.getLogger(__name__)

# Re-record an unchanged sighting this often, so travel speed is measured from a recent point.
_REFRESH_SECONDS = 900.0


class RiskGatherer:
    def __init__(
        self,
        config: RiskConfig,
        sessions: SessionsConfig,
        *,
        reputation: ReputationList,
        geo: GeoLocator,
        baselines: BaselineStore,
        state: RiskStateStore,
        metrics: RiskMetrics,
        invalidate_user: Callable[[str], Awaitable[None]],
    ) -> None:
        self._config, self._sessions = config, sessions
        self._reputation, self._geo, self._baselines = reputation, geo, baselines
        self._state, self._metrics, self._invalidate_user = state, metrics, invalidate_user
        self._recording: set[tuple[str, str, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

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
        assessment = await self._assess(ctx, session, history, now, login=True)
        telemetry = self._telemetry(ctx, now)
        self._metrics.observe(assessment)
        await self._state.record(session.user_id, session.organisation, telemetry, assessment)
        return assessment

    async def assess(self, ctx: RequestContext, session: Session, now: float) -> RiskAssessment:
        """Raises StoreUnavailable only when the organisation's baseline must be read and cannot."""
        return await self._assess(ctx, session, risk_history_from_fields(session.risk_state), now)

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
        self,
        ctx: RequestContext,
        session: Session,
        history: RiskHistory,
        now: float,
        *,
        login: bool = False,
    ) -> RiskAssessment:
        telemetry = self._telemetry(ctx, now)
        baseline = self._baselines.cached(session.organisation) or await self._baselines.get(
            session.organisation
        )
        max_age = (
            self._sessions.max_age_for_roles(session.roles) or self._sessions.default_mfa_max_age
        )
        age = session.mfa_age(now)
        assessment = assess(
            telemetry,
            history,
            baseline,
            privileged=bool(session.roles & self._sessions.privileged_roles),
            mfa_fresh=age is not None and age <= max_age,
            reputation_hit=self._reputation.contains(telemetry.ip),
            config=self._config,
        )
        if not login and needs_record(telemetry, history, refresh_seconds=_REFRESH_SECONDS):
            # One authentication attempt from a new device or place: count it and remember it.
            self._metrics.observe(assessment)
            self._record_later(session, telemetry, assessment)
        return assessment

    def _record_later(
        self, session: Session, telemetry: Telemetry, assessment: RiskAssessment
    ) -> None:
        key = (session.session_id, telemetry.device_id, telemetry.ip)
        if key in self._recording:
            return
        self._recording.add(key)
        task = asyncio.create_task(self._record(key, session, telemetry, assessment))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record(
        self,
        key: tuple[str, str, str],
        session: Session,
        telemetry: Telemetry,
        assessment: RiskAssessment,
    ) -> None:
        try:
            await self._state.record(session.user_id, session.organisation, telemetry, assessment)
            # The history rides in every replica's cached session: drop those copies.
            await self._invalidate_user(user_tag(session.user_id))
        except AdmitdError as exc:
            log.warning(
                "device telemetry not recorded (%s); it will be retried on the next request", exc
            )
        finally:
            self._recording.discard(key)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self._geo.close()
