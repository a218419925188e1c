"""Structured JSON logs: one line per decision, never a secret, token or whole certificate."""

from __future__ import annotations

import json
import logging
import sys

from admitd.core.context import RequestContext
from admitd.core.decision import Decision

__all__ = ["DecisionLog", "configure_logging"]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        else:
            entry["msg"] = record.getMessage()
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, separators=(",", ":"), default=str)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class DecisionLog:
    """Writes the decision line. The path is logged without its query, which may carry tokens."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger("admitd.decision")

    def record(self, ctx: RequestContext, decision: Decision, source: str, seconds: float) -> None:
        if not self._log.isEnabledFor(logging.INFO):
            return
        identity = decision.identity
        fields = {
            "event": "decision",
            "decision": decision.audit_verdict,
            "reason": decision.reason.value,
            "status": decision.status,
            "route": decision.route,
            "principal": identity.principal if identity else "",
            "cert_sha256": identity.fingerprint_sha256 if identity else "",
            "cert_source": source,
            "method": ctx.method,
            "host": ctx.host[:255],
            "path": ctx.path_only[:512],
            "request_id": ctx.request_id[:128],
            "policy_version": decision.policy_version,
            "duration_us": int(seconds * 1e6),
        }
        self._log.info("decision", extra={"fields": fields})
