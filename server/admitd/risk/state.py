"""Per-user risk state in Redis: ONE hash per user, so a Check reads it with the session.

    admitd:{tag}:risk                 HASH, expires telemetry_retention_seconds after
        d:<device id>  -> last seen     the last write (an inactive user is forgotten)
        t:<device id>  -> trusted at    (an approved trust-device override)
        geo            -> "lat,lon,CC"  last known location ...
        seen_at        -> Unix seconds  ... and when it was observed
        ip             -> last source address
    admitd:{tag}:telemetry:<id>       STRING, sealed telemetry record (JSON envelope),
                                      expires telemetry_retention_seconds after it was written
    admitd:{tag}:risk:pending:<sid>:<device>   STRING, the changes a refused or stepped-up
                                      attempt of session <sid> from <device> would make
                                      (JSON), for PENDING_SECONDS

The history (known devices, last place) only moves after an attempt admitted at a
sufficient assurance: a Check allowed without a step-up, or a successful MFA
verification of the session that made the attempt, from the same device (which
promotes that device's pending sighting). A refused attempt is kept as sealed
telemetry only, so repeating it is judged against the same history and refused again.

All keys carry the user's hash tag, so one pipeline or transaction stays on one slot.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Mapping
from typing import Any, cast

import redis.asyncio as redis

from admitd.envelope import Context, RecordType, Sealer, json_from_envelope
from admitd.risk.model import GeoPoint, RiskAssessment, RiskHistory, Telemetry
from admitd.sessions.keys import RISK_STATE, user_key
from admitd.sessions.tokens import user_tag

__all__ = [
    "PENDING_SECONDS",
    "RiskStateStore",
    "needs_record",
    "risk_history_from_fields",
    "risk_state_key",
    "telemetry_key",
    "trusted_device_field",
]

_DEVICE, _TRUSTED = "d:", "t:"
# How long a refused attempt's sighting waits for the session's MFA verification:
# long enough to finish a step-up page, short enough that an old sighting cannot be
# promoted by an unrelated verification much later.
PENDING_SECONDS = 900


def risk_state_key(tag: str) -> str:
    return user_key(tag, RISK_STATE)


def telemetry_key(tag: str, record_id: str) -> str:
    return user_key(tag, f"telemetry:{record_id}")


def pending_key(tag: str, session_id: str, device_id: str) -> str:
    # Device IDs are 1-128 of [A-Za-z0-9._:-] (telemetry refuses others): safe in a key.
    return user_key(tag, f"{RISK_STATE}:pending:{session_id}:{device_id}")


def trusted_device_field(device_id: str) -> str:
    return _TRUSTED + device_id


def risk_history_from_fields(fields: Mapping[str, str]) -> RiskHistory:
    """The `HGETALL` of `risk_state_key` as a RiskHistory; unreadable values are ignored
    (an empty hash is a user never seen: every device is new)."""
    seen_at = _number(fields.get("seen_at"))
    return RiskHistory(
        known_devices=frozenset(k[len(_DEVICE) :] for k in fields if k.startswith(_DEVICE)),
        last_geo=_geo(fields.get("geo")),
        last_seen_at=seen_at,
        last_ip=fields.get("ip", ""),
        trusted_devices=frozenset(k[len(_TRUSTED) :] for k in fields if k.startswith(_TRUSTED)),
    )


def needs_record(telemetry: Telemetry, history: RiskHistory, *, refresh_seconds: float) -> bool:
    """Whether `RiskStateStore.record` has anything to change: a new device, IP or
    location, or a location older than `refresh_seconds` (so travel speed is
    measured from a recent sighting, not from hours ago)."""
    if telemetry.device_id and telemetry.device_id not in history.known_devices:
        return True
    if telemetry.ip != history.last_ip:
        return True
    if telemetry.geo is None:
        return False  # nothing new to remember about the location
    if history.last_geo is None or history.last_seen_at is None:
        return True
    # Compared as stored (rounded), or every request would count as a move.
    if text_from_geo(telemetry.geo) != text_from_geo(history.last_geo):
        return True
    return telemetry.at - history.last_seen_at >= refresh_seconds


def text_from_geo(geo: GeoPoint) -> str:
    return f"{geo.lat:.4f},{geo.lon:.4f},{geo.country}"


class RiskStateStore:
    """Writes risk state and sealed telemetry; called off the hot path."""

    def __init__(
        self,
        client: redis.Redis,
        sealer: Sealer,
        *,
        retention_seconds: int,
        max_known_devices: int = 20,
    ) -> None:
        self._redis, self._sealer = client, sealer
        self._retention, self._max_devices = retention_seconds, max_known_devices

    async def history(self, user_id: str) -> RiskHistory:
        """One HGETALL (the hot path reads it in the session pipeline instead)."""
        fields = await cast(Any, self._redis.hgetall(risk_state_key(user_tag(user_id))))
        return risk_history_from_fields(fields)

    async def record(
        self,
        user_id: str,
        organisation: str,
        telemetry: Telemetry,
        assessment: RiskAssessment,
        *,
        admitted: bool,
        session_id: str = "",
    ) -> str:
        """Store the sealed telemetry record of one attempt and, when it was `admitted`
        at a sufficient assurance, remember its device, IP and location.

        A refused attempt changes no history: its changes wait as the pending sighting of
        `session_id` on that device until the session verifies MFA from the same device
        (`promote_pending`). An attempt without a device ID leaves nothing to promote.
        Returns the telemetry record ID. Raises StoreUnavailable (Redis) or
        KmsError/EnvelopeError (sealing); nothing is written if sealing fails.
        """
        tag = user_tag(user_id)
        record_id = f"{int(telemetry.at * 1000)}-{secrets.token_hex(6)}"
        context = Context(
            RecordType.DEVICE_TELEMETRY, record_id, organisation, (("user", user_id),)
        )
        sealed = await self._sealer.seal(_payload(telemetry, assessment), context)
        key = risk_state_key(tag)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(telemetry_key(tag, record_id), json_from_envelope(sealed), ex=self._retention)
            if admitted:
                pipe.hset(key, mapping=cast(Any, _changes(telemetry)))
                pipe.expire(key, self._retention)
                pipe.hgetall(key)
            elif session_id and telemetry.device_id:  # a device we can name, or none at all
                changes = json.dumps(_changes(telemetry), separators=(",", ":"))
                pending = pending_key(tag, session_id, telemetry.device_id)
                pipe.set(pending, changes, ex=PENDING_SECONDS)
            replies = await pipe.execute()
        if admitted:
            await self._evict(key, replies[-1])
        return record_id

    async def promote_pending(self, tag: str, session_id: str, device_id: str) -> bool:
        """The session verified MFA from `device_id`: that device's pending sighting in this
        session (if any) joins the history; another device's never does.

        GETDEL makes the promotion single-use: one verification, one sighting.
        """
        key = risk_state_key(tag)
        raw = await cast(Any, self._redis.getdel(pending_key(tag, session_id, device_id)))
        changes = _pending_changes(raw)
        if not changes:
            return False
        current = _number(await cast(Any, self._redis.hget(key, "seen_at")))
        if current is not None and (_number(changes.get("seen_at")) or 0.0) < current:
            # An admitted attempt has been seen since: keep its newer place.
            changes = {k: v for k, v in changes.items() if k.startswith(_DEVICE)}
        if not changes:
            return True
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=cast(Any, changes))
            pipe.expire(key, self._retention)
            pipe.hgetall(key)
            *_, fields = await pipe.execute()
        await self._evict(key, fields)
        return True

    async def trust_device(self, user_id: str, device_id: str, at: float) -> None:
        """Apply an approved trust-device override (idempotent)."""
        key = risk_state_key(user_tag(user_id))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, trusted_device_field(device_id), repr(at))
            pipe.expire(key, self._retention)
            await pipe.execute()

    async def _evict(self, key: str, fields: Mapping[str, str]) -> None:
        """Keep the `max_known_devices` most recently seen devices."""
        devices = sorted(
            (k for k in fields if k.startswith(_DEVICE)),
            key=lambda k: _number(fields[k]) or 0.0,
            reverse=True,
        )
        if len(devices) > self._max_devices:
            await cast(Any, self._redis.hdel(key, *devices[self._max_devices :]))


def _changes(telemetry: Telemetry) -> dict[str, str]:
    changes = {"ip": telemetry.ip}
    if telemetry.device_id:
        changes[_DEVICE + telemetry.device_id] = repr(telemetry.at)
    if telemetry.geo is not None:
        # Location and time move together: an unknown location keeps the last known one.
        changes["geo"] = text_from_geo(telemetry.geo)
        changes["seen_at"] = repr(telemetry.at)
    return changes


def _pending_changes(raw: str | bytes | None) -> dict[str, str]:
    """The stored changes of a pending sighting; anything unreadable is no sighting."""
    try:
        document = json.loads(raw) if raw is not None else None
    except ValueError:
        return {}
    if not isinstance(document, dict):
        return {}
    allowed = ("ip", "geo", "seen_at")
    return {
        k: v
        for k, v in document.items()
        if isinstance(v, str) and (k in allowed or k.startswith(_DEVICE))
    }


def _payload(telemetry: Telemetry, assessment: RiskAssessment) -> bytes:
    geo = telemetry.geo
    record = {
        "device_id": telemetry.device_id,
        "user_agent": telemetry.user_agent,
        "user_agent_ok": telemetry.user_agent_ok,
        "ip": telemetry.ip,
        "geo": None if geo is None else {"lat": geo.lat, "lon": geo.lon, "country": geo.country},
        "anomaly_score": telemetry.anomaly_score,
        "at": telemetry.at,
        "score": assessment.score,
        "level": assessment.level.value,
        "signals": list(assessment.signals),
        "baseline_deviation": assessment.baseline_deviation,
    }
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _geo(text: str | None) -> GeoPoint | None:
    parts = (text or "").split(",")
    if len(parts) != 3:
        return None
    lat, lon = _number(parts[0]), _number(parts[1])
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return GeoPoint(lat, lon, parts[2])
