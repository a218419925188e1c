"""The spool, config, the decision adapter and the KMS events adapter (no Redis)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import CollectorRegistry

from admitd.audit import AuditEntry, AuditLogEvents, audit_entry_from_decision
from admitd.audit.config import SECTION_KEYS, audit_config_from_fields
from admitd.audit.metrics import AuditMetrics
from admitd.audit.sealed import SealedEntry
from admitd.audit.spool import Spool
from admitd.core.decision import Decision, Reason
from admitd.errors import ConfigError
from admitd.fields import Fields
from admitd.yamlsource import yaml_document_from_text


def sealed(n: int) -> SealedEntry:
    return SealedEntry(n.to_bytes(32, "big"), f'{{"n":{n}}}')


def spool(tmp_path: Path, max_bytes: int = 1 << 20) -> tuple[Spool, CollectorRegistry]:
    registry = CollectorRegistry()
    return Spool(tmp_path / "spool.jsonl", max_bytes, AuditMetrics(registry)), registry


def test_spool_replays_in_order_and_empties(tmp_path: Path) -> None:
    s, _ = spool(tmp_path)
    s.append([sealed(n) for n in range(5)])
    first = s.read_batch(3)
    assert [e.digest for e in first.entries] == [sealed(n).digest for n in range(3)]
    s.commit(first.end_offset)
    reopened, _ = spool(tmp_path)  # the offset survives a restart
    rest = reopened.read_batch(10)
    assert [e.digest for e in rest.entries] == [sealed(n).digest for n in (3, 4)]
    reopened.commit(rest.end_offset)
    assert not reopened.pending and (tmp_path / "spool.jsonl").stat().st_size == 0


def test_corrupt_and_torn_records_are_quarantined_not_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "spool.jsonl"
    path.write_bytes(sealed(1).spool_line() + b"garbage\n" + sealed(2).spool_line() + b'{"dig')
    s, _ = spool(tmp_path)
    batch = s.read_batch(10)
    assert [e.digest for e in batch.entries] == [sealed(1).digest, sealed(2).digest]
    corrupt = (tmp_path / "spool.jsonl.corrupt").read_bytes()
    assert b"garbage" in corrupt and b'{"dig' in corrupt
    assert "unreadable record at byte" in caplog.text


def test_spool_bound_alerts_and_counts_losses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    line = len(sealed(0).spool_line())
    s, registry = spool(tmp_path, max_bytes=line * 10)
    with caplog.at_level(logging.WARNING, logger="admitd.audit"):
        assert s.append([sealed(n) for n in range(9)]) == 9
        assert "90% full" in caplog.text
        assert s.append([sealed(n) for n in range(3)]) == 1
    assert registry.get_sample_value("admitd_audit_spool_full_ratio") == 1.0
    assert registry.get_sample_value("admitd_audit_appends_total", {"outcome": "dropped"}) == 2


def fields(text: str, tmp_path: Path) -> Fields:
    doc = yaml_document_from_text(text, str(tmp_path / "admitd.yaml"))
    return Fields(doc, ("audit",), doc.data["audit"], SECTION_KEYS)  # type: ignore[index]


def test_config_defaults_and_key_mode(tmp_path: Path) -> None:
    cfg = audit_config_from_fields(fields("audit: {spool_file: s.jsonl}\n", tmp_path))
    assert (
        cfg.stream_key == "admitd:audit" and cfg.spool_file == tmp_path / "s.jsonl" and cfg.instance
    )
    key = tmp_path / "audit.pem"
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key.write_bytes(pem)
    os.chmod(key, 0o644)
    with pytest.raises(
        ConfigError,
        match=r"admitd.yaml:2: audit.signing_key_file: .*audit.pem is readable by others.*chmod 600",
    ):
        audit_config_from_fields(fields("audit:\n  signing_key_file: audit.pem\n", tmp_path))
    os.chmod(key, 0o600)
    assert (
        audit_config_from_fields(
            fields("audit: {signing_key_file: audit.pem}\n", tmp_path)
        ).signing_key_file
        == key
    )
    with pytest.raises(ConfigError, match="unknown key"):
        audit_config_from_fields(fields("audit: {nope: 1}\n", tmp_path))


def test_decision_adapter_audits_denials_and_step_ups_only() -> None:
    allow = Decision(allowed=True, reason=Reason.ALLOWED)
    assert (
        audit_entry_from_decision(allow, instance="i", source_ip="1.2.3.4", device_id="d", now=1.0)
        is None
    )
    step_up = Decision(
        allowed=False, reason=Reason.MFA_STEP_UP_REQUIRED, route="r", policy_version="p1"
    )
    e = audit_entry_from_decision(
        step_up, instance="i", source_ip="1.2.3.4", device_id="d", now=1.0
    )
    assert e is not None and e.event_type == "decision.step_up" and e.decision == "deny"
    assert (e.reason, e.policy_version, e.source_ip, e.device_id) == (
        "mfa_step_up_required",
        "p1",
        "1.2.3.4",
        "d",
    )
    denied = Decision(allowed=False, reason=Reason.CERTIFICATE_REVOKED)
    d = audit_entry_from_decision(denied, instance="i", source_ip="", device_id="", now=1.0)
    assert d is not None and d.event_type == "decision.denied" and d.user == ""


def test_kms_events_land_as_entries() -> None:
    got: list[AuditEntry] = []

    class Sink:
        def append(self, entry: AuditEntry) -> None:
            got.append(entry)

    AuditLogEvents(Sink(), instance="a", clock=lambda: 5.0).record(
        "kms.key.rotated", {"alias": "kms/audit-log", "active_version": "2", "user": "ops"}
    )
    assert (
        got[0].event_type == "kms.key.rotated" and got[0].user == "ops" and got[0].instance == "a"
    )
    assert dict(got[0].details) == {"alias": "kms/audit-log", "active_version": "2"}
