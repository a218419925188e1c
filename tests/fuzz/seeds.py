"""Valid policy and config documents that the YAML fuzz tests and targets mutate.

Each uses most of its loader's keys, so a mutation lands in every section's reader.
"""

from __future__ import annotations

__all__ = ["CONFIG_SEED", "POLICY_SEED"]

POLICY_SEED = """\
unmatched: deny
require_https: true
defaults:
  shadow: false
routes:
  - name: healthz
    match: {path_exact: /healthz, methods: [GET, HEAD]}
    public: true
  - name: payments-api
    match:
      hosts: [api.example.com, "*.internal.example.com"]
      path_prefix: /payments/
      methods: [GET, POST]
      headers: {x-tenant: acme, x-env: {regex: "prod|stage"}, x-debug: {present: true}}
    identities:
      spiffe: ["spiffe://example.org/ns/payments/sa/*"]
      dns: ["*.clients.example.com"]
      subjects: ["CN=batch,O=Example"]
      cert_sha256: ["0000000000000000000000000000000000000000000000000000000000000000"]
    session: required
    roles: [finance, admin]
    scopes: ["ledger:read"]
    mfa_max_age: {default: 900, admin: 300}
    recovery: false
    risk: {step_up_at: high, deny_at: critical}
    conditions:
      - request.method == "GET" || session.roles.exists(r, r == "editor")
    upstream_headers: {x-tenant-verified: "yes"}
    shadow: false
    allow_path_parameters: false
    step_up: admitd
    organisations:
      strict-bank: {mfa_max_age: 60, risk: {step_up_at: medium}}
  - name: reports
    match: {path_regex: "/reports/[0-9]+"}
    identities: any
    session: optional
"""

CONFIG_SEED = """\
listen: 127.0.0.1:9001
metrics_listen: 127.0.0.1:9464
policies: policies
log_level: info
event_loop: asyncio
grace_seconds: 5
policy_reload_seconds: 2
dev_mode: false
tls:
  trust_bundle: trust-bundle.pem
  crl_files: [client-ca.crl.pem]
  max_chain_length: 8
  revocation_poll_seconds: 2
  verify_cache_size: 10000
trusted_proxies:
  - name: edge-lb
    principals: ["spiffe://example.org/ns/edge/sa/lb"]
    header: xfcc
  - name: lb-by-address
    cidrs: [10.0.0.0/8]
    header: client-cert
sessions:
  cookie_name: __Host-admitd_session
  idle_timeout: 1800
  absolute_timeout: 43200
  privileged_roles: [admin, finance, auditor]
  default_mfa_max_age: 900
  mfa_max_age: {auditor: 3600}
mfa:
  max_failures: 5
  lockout_seconds: 900
  totp_issuer: admitd
jwt:
  cache_size: 100
  issuers:
    - issuer: https://idp.example.com
      audiences: [https://api.example.com]
      algorithms: [RS256, ES256]
      roles_claim: realm_access.roles
      role_map: {idp-admin: [admin]}
"""
