"""Structured JSON logs: one line per decision, never a secret, token or whole certificate."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable

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
    """One JSON line per decision, batched: formatting through `logging` and a write
    per line cost more than the rest of a Check, so lines are collected and written
    in one syscall by `flush()` (the server calls it a few times a second and at
    shutdown) or when the batch is full. The path is logged without its query,
    which may carry tokens.
    """

    def __init__(self, sink: Callable[[str], None] | None = None, *, batch: int = 256) -> None:
        self._sink = sink or _write_stderr
        self._batch = batch
        self._lines: list[str] = []

    def record(
        self,
        ctx: RequestContext,
        decision: Decision,
        source: str,
        seconds: float,
        at: float | None = None,
    ) -> None:
        """`at`: when the decision was made (Unix seconds), if not now: with durable answers
        the line is written once the audit entry is, and `ts` stays the decision's time."""
        identity = decision.identity
        shadow = decision.shadow_reason
        # A template with each string JSON-escaped: the same line json.dumps would write
        # (tests compare them), at half its cost, which a Check pays on every decision.
        line = (
            _LINE
            % (
                round(time.time() if at is None else at, 3),
                _q(decision.audit_verdict),
                _q(decision.reason.value),
                decision.status,
                _q(decision.route),
                _q(identity.principal) if identity else '""',
                _q(identity.fingerprint_sha256) if identity else '""',
                _q(source),
                _q(ctx.method),
                _q(ctx.host[:255]),
                _q(ctx.path_only[:512]),  # without the query, which may carry tokens
                _q(ctx.request_id[:128]),
                _q(decision.policy_version),
                _q(shadow.value) if shadow else '""',
                _q(decision.log_detail),  # e.g. a CEL error: the log's, never the client's
                int(seconds * 1e6),
            )
        )
        self._lines.append(line)
        if len(self._lines) >= self._batch:
            self.flush()

    def flush(self) -> None:
        if self._lines:
            lines, self._lines = self._lines, []
            self._sink("\n".join(lines) + "\n")


_q = json.encoder.encode_basestring_ascii  # a JSON string literal, non-ASCII escaped
_LINE = (
    '{"ts":%r,"level":"info","logger":"admitd.decision","event":"decision",'
    '"decision":%s,"reason":%s,"status":%d,"route":%s,"principal":%s,"cert_sha256":%s,'
    '"cert_source":%s,"method":%s,"host":%s,"path":%s,"request_id":%s,'
    '"policy_version":%s,"shadow_reason":%s,"detail":%s,"duration_us":%d}'
)


def _write_stderr(text: str) -> None:
    data = text.encode()
    while data:
        written = os.write(sys.stderr.fileno(), data)
        data = data[written:]
