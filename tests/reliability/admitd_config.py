"""What each admitd replica of the system under test is configured with: the route
policy, the shared files (policy, deny list, reputation list, checkpoint keys), its YAML."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from tests.e2e.test_risk_audit_edge import write_keys
from tests.pki_fixtures import PkiSet
from tests.reliability.admitd_process import AdmitdReplica

if TYPE_CHECKING:
    from tests.reliability.stack import StackSettings

__all__ = ["ADMIN", "POLICY", "write_admitd_config", "write_shared_files"]

ADMIN = "spiffe://test.example/user/ops"  # the admin API's allowed caller
POLICY = """
routes:
  - name: public
    match: {path_prefix: /public/}
    public: true
  - name: cert
    match: {path_prefix: /cert/}
    identities:
      spiffe: ["spiffe://test.example/user/alice"]
  - name: session
    match: {path_prefix: /app/}
    identities: any
    session: required
  - name: finance
    match: {path_prefix: /finance/}
    identities: any
    roles: [finance]
"""
# Lockouts come quickly, so a test reaches one in three calls.
MFA = {"max_failures": 3, "backoff_base_seconds": 0, "lockout_seconds": 600}


def write_shared_files(work: Path) -> None:
    (work / "policies.yaml").write_text(POLICY)
    (work / "denylist.txt").write_text("")
    # Device risk on, with a reputation list that does not name loopback: risk is
    # assessed on every session request, but the healthy mix is not stepped up.
    (work / "blocklist.txt").write_text("203.0.113.0/24 ; TEST-NET-3\n")
    write_keys(work)


def write_admitd_config(
    replica: AdmitdReplica, pki: PkiSet, redis_url: str, settings: StackSettings
) -> None:
    work = replica.work
    config: dict[str, object] = {
        "listen": f"127.0.0.1:{replica.authz_port}",
        "metrics_listen": f"127.0.0.1:{replica.metrics_port}",
        "policies": str(work / "policies.yaml"),
        "redis_url": redis_url,
        "grace_seconds": settings.grace_seconds,
        "tls": {
            "trust_bundle": str(pki.trust_bundle),
            "crl_files": [str(pki.crl)],
            "deny_list": str(work / "denylist.txt"),
        },
        "dev_mode": True,  # deterministic dev KMS keys seal telemetry and audit entries
        "kms": {"provider": "dev"},  # named, so `admitd audit export/verify` can open entries
        "risk": {"reputation_files": [str(work / "blocklist.txt")]},
        "sessions": {} if settings.session_cache else {"cache_ttl": 0},
        "audit": {
            "spool_file": str(replica.spool_file),
            "signing_key_file": str(work / "audit-signing.pem"),
            "checkpoint_interval_seconds": 1,
            "instance": replica.name,
            **dict(settings.audit),
        },
    }
    if settings.admin_api:
        config["admin"] = {
            "listen": f"127.0.0.1:{replica.admin_port}",
            "server_cert": str(pki.directory / "server.pem"),
            "server_key": str(pki.directory / "server.key"),
            "principals": [ADMIN],
        }
        config["mfa"] = MFA
    replica.config_file.write_text(yaml.safe_dump(config))
