"""admitd's side of the benchmark: the route policies, the keyring and each variant's config.

The full policy (admitd-full, -deny, -mixed) is what a production deployment runs, not a
dev build (no dev_mode): a `local` KMS whose keyring file the harness creates in the work
dir (one random master key per alias, as `admitd keys init` does), the hash-chained audit
log (sealed entries in the Redis stream, a local spool for outages) and device risk
(which needs Redis and a KMS: telemetry is stored sealed), judged on session routes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from session_setup import SESSION_ROUTE
from variants import DENY_PREFIX

from admitd.kms.base import DEFAULT_ALIASES
from admitd.kms.local import create_keyring_file
from admitd.pki import DEV_FILES

__all__ = [
    "DENY_ROUTE",
    "DEVICE_ID_HEADER",
    "admitd_config",
    "bench_policies",
    "create_keyring",
    "full_policy_sections",
]

# Only admins' certificates may use it, so every dev user (alice, mallory) is refused
# (identity_not_allowed), and every such denial is an audit entry.
DENY_ROUTE = {
    "name": "private",
    "match": {"path_prefix": DENY_PREFIX},
    "identities": {"spiffe": ["spiffe://admitd.dev/admin/*"]},
}
DEVICE_ID_HEADER = "x-device-id"


def bench_policies() -> dict[str, Any]:
    return {
        "unmatched": "deny",
        "require_https": True,
        "routes": [
            {
                "name": "api",
                "match": {"path_prefix": "/api/"},
                "identities": {"spiffe": ["spiffe://admitd.dev/user/*"]},
            },
            SESSION_ROUTE,
            DENY_ROUTE,
        ],
    }


def create_keyring(root: Path) -> Path:
    """A fresh keyring (0600) with a master key for every default alias."""
    path = root / "keyring.json"
    create_keyring_file(path, DEFAULT_ALIASES)
    return path


def full_policy_sections(keyring: Path, spool: Path) -> dict[str, Any]:
    """The kms:, audit: and risk: sections of the full policy."""
    return {
        "kms": {"provider": "local", "keyring": str(keyring)},
        "audit": {"spool_file": str(spool), "instance": "bench"},
        # Defaults otherwise: no reputation lists, no geo database, so a known device with
        # a browser's user agent and fresh MFA is `low`, as for a normal user.
        "risk": {"device_id_header": DEVICE_ID_HEADER},
    }


def admitd_config(
    listen: str,
    policies: Path,
    *,
    redis_url: str = "",
    jwt: dict[str, Any] | None = None,
    event_loop: str = "auto",
    metrics_listen: str = "",
    full_policy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """admitd's config; tls paths are relative to the file it is written to (the work dir)."""
    config: dict[str, Any] = {
        "listen": listen,
        "metrics_listen": metrics_listen,
        "policies": str(policies),
        "log_level": "info",
        "event_loop": event_loop,
        "tls": {
            "trust_bundle": f"pki/{DEV_FILES['trust']}",
            "crl_files": [f"pki/{DEV_FILES['crl']}"],
            "deny_list": f"pki/{DEV_FILES['deny_list']}",
        },
    }
    if redis_url:
        config["redis_url"] = redis_url
    if jwt is not None:
        config["jwt"] = jwt
    if full_policy is not None:
        config.update(full_policy)
    return config
