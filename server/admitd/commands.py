"""Sub-commands of `admitd`: each `_add_*` defines one, with its handler beside it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from admitd.cli_setup import add_config_option, required_config
from admitd.errors import ConfigError

__all__ = ["registrars"]

if TYPE_CHECKING:
    from admitd.config import Config
    from admitd.devstack.stack import DevOidc
    from admitd.workers_child import WorkerRole

    Commands = argparse._SubParsersAction[argparse.ArgumentParser]


def registrars() -> list[Callable[[Commands], None]]:
    from admitd.admin.cli import register as register_sessions
    from admitd.audit.cli import register as register_audit
    from admitd.kms.cli import register as register_keys
    from admitd.policy.cli import register as register_policy
    from admitd.risk.cli import register as register_risk

    return [
        _add_serve,
        _add_check_config,
        _add_dev,
        _add_pki,
        _add_revoke,
        register_keys,
        register_sessions,
        register_policy,
        register_risk,
        register_audit,
    ]


def _add_serve(commands: Commands) -> None:
    parser = commands.add_parser("serve", help="run the ext_authz gRPC server")
    add_config_option(parser, "admitd YAML config (default: $ADMITD_CONFIG)")
    parser.add_argument(
        "--workers",
        metavar="N|auto",
        help="worker processes sharing the Check port (overrides the config's workers;"
        " auto: one per usable CPU; docs/workers.md)",
    )
    # Set by the supervisor when it starts a worker; not for operators.
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--worker-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--worker-fd", type=int, help=argparse.SUPPRESS)
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from admitd.config import load_config
    from admitd.logs import configure_logging

    config_file = required_config(args, fix="pass --config FILE or set ADMITD_CONFIG")
    config = load_config(config_file)
    if args.workers is not None:
        config = _with_workers(config, args.workers)
    role = _worker_role(config, args) if args.worker is not None else None
    configure_logging(config.log_level)
    if role is not None:
        from admitd.workers_child import run_worker

        return run_worker(config, role)
    if config.workers > 1:
        from admitd.workers import supervise

        return supervise(config, config_file)
    from admitd.server import run

    run(config)
    return 0


def _with_workers(config: Config, text: str) -> Config:
    from dataclasses import replace

    from admitd.workers import worker_needs
    from admitd.workers_config import workers_from_text

    return replace(config, workers=workers_from_text(text, worker_needs(config)))


def _worker_role(config: Config, args: argparse.Namespace) -> WorkerRole:
    from admitd.workers_child import WorkerRole

    if args.worker_dir is None or args.worker_fd is None or not 0 <= args.worker < config.workers:
        raise ConfigError(
            "--worker is set by admitd's supervisor", key="--worker", fix="run admitd serve"
        )
    return WorkerRole(args.worker, args.worker_dir, args.worker_fd)


def _add_check_config(commands: Commands) -> None:
    parser = commands.add_parser(
        "check-config", help="validate a config and its policies, then exit"
    )
    parser.add_argument("file", type=Path)
    parser.set_defaults(handler=_check_config)


def _check_config(args: argparse.Namespace) -> int:
    from admitd.config import load_config
    from admitd.runtime import runtime_from_config

    # Loading checks every file it reads (TLS key pairs match, the web signing key
    # is private and long enough); what depends on the clock is checked here.
    config = load_config(args.file)
    runtime = runtime_from_config(config)
    for warning in _admin_warnings(config, datetime.now(UTC)):
        print(f"admitd: warning: {warning}", file=sys.stderr)
    policy = runtime.policy
    print(
        f"{args.file}: ok ({len(policy.routes)} routes, policy version {policy.version}, "
        f"unmatched requests: {policy.unmatched.value})"
    )
    return 0


def _admin_warnings(config: Config, now: datetime) -> list[str]:
    """Raises ConfigError when the admin API's certificate is not valid now."""
    from admitd.admin.tls import server_certificate_validity

    if config.admin is None:
        return []
    validity = server_certificate_validity(config.admin.server_cert, now)
    if validity.error:
        raise ConfigError(
            validity.error,
            file=config.file,
            key="admin.server_cert",
            fix="issue a new server certificate for the admin API and restart admitd",
        )
    warnings = [f"admin.server_cert: {validity.warning}; renew it"] if validity.warning else []
    approvers = config.risk.approvers
    if not approvers:
        warnings.append(
            "risk.approvers is not set, so the risk API (admitd risk ...) refuses every caller;"
            " list the certificates of the people who request and approve overrides"
        )
    elif len(approvers) == 1:
        warnings.append(
            "risk.approvers lists one principal: dual control needs two (an override is"
            " approved by someone other than its requester)"
        )
    return warnings


def _add_dev(commands: Commands) -> None:
    parser = commands.add_parser(
        "dev", help="run the local stack: dev PKI, admitd, Envoy, echo upstream"
    )
    parser.add_argument(
        "--home", type=Path, default=Path(".dev"), help="working folder (default .dev)"
    )
    parser.add_argument("--policies", type=Path, default=Path("policies"))
    parser.add_argument("--redis-url", default=None, help="share session state through this Redis")
    parser.add_argument("--https-port", type=int, default=8443)
    oidc = parser.add_argument_group(
        "sign-in at a real IdP (default: the dev sign-in page, no IdP)"
    )
    oidc.add_argument("--oidc-issuer", metavar="URL", help="the OpenID Provider's issuer")
    oidc.add_argument("--oidc-client-id", default="admitd-dev", metavar="ID")
    oidc.add_argument(
        "--oidc-client-secret-file",
        type=Path,
        metavar="FILE",
        help="admitd's client secret at the IdP (chmod 600); needed with --oidc-issuer",
    )
    oidc.add_argument("--oidc-organisation-claim", metavar="CLAIM")
    oidc.add_argument("--oidc-roles-claim", metavar="CLAIM", help="default: groups")
    parser.set_defaults(handler=_dev)


def _dev(args: argparse.Namespace) -> int:
    from admitd.devstack.stack import DevPorts, run_dev_stack
    from admitd.logs import configure_logging

    configure_logging("info")
    if not args.policies.exists():
        raise ConfigError(
            f"{args.policies} does not exist", key="--policies", fix="run from the repository root"
        )
    ports = DevPorts(https=args.https_port)
    return run_dev_stack(args.home, args.policies, ports, args.redis_url, _dev_oidc(args))


def _dev_oidc(args: argparse.Namespace) -> DevOidc | None:
    from admitd.devstack.stack import DevOidc

    if args.oidc_issuer is None:
        if args.oidc_client_secret_file is not None:
            raise ConfigError(
                "--oidc-client-secret-file without --oidc-issuer",
                key="--oidc-issuer",
                fix="name the IdP with --oidc-issuer URL, or drop the secret file",
            )
        return None
    if args.oidc_client_secret_file is None:
        raise ConfigError(
            "--oidc-issuer needs admitd's client secret",
            key="--oidc-client-secret-file",
            fix="write the secret to a file, chmod 600 it, and pass --oidc-client-secret-file",
        )
    return DevOidc(
        issuer=args.oidc_issuer,
        client_id=args.oidc_client_id,
        client_secret_file=args.oidc_client_secret_file,
        organisation_claim=args.oidc_organisation_claim,
        roles_claim=args.oidc_roles_claim,
    )


def _add_pki(commands: Commands) -> None:
    parser = commands.add_parser("pki", help="development PKI")
    sub = parser.add_subparsers(dest="pki_command", required=True)
    dev = sub.add_parser("dev", help="write a dev root CA, client CA, server cert and client certs")
    dev.add_argument("--out", type=Path, default=Path(".dev/pki"))
    dev.set_defaults(handler=_pki_dev)


def _pki_dev(args: argparse.Namespace) -> int:
    from admitd.pki import write_dev_pki

    for path in write_dev_pki(args.out):
        print(path)
    return 0


def _add_revoke(commands: Commands) -> None:
    parser = commands.add_parser(
        "revoke", help="add a certificate to the deny list (no restart needed)"
    )
    parser.add_argument(
        "--deny-list", type=Path, required=True, help="the file named by tls.deny_list"
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--serial", help="certificate serial number, hex")
    group.add_argument(
        "--sha256",
        help="SHA-256 fingerprint of one exact DER encoding, hex (prefer --cert or --serial)",
    )
    group.add_argument("--cert", type=Path, help="a PEM certificate file to deny by fingerprint")
    group.add_argument(
        "--spiffe-id", help="a workload's SPIFFE ID: its certificates and its mesh identity"
    )
    parser.add_argument("--comment", default="", help="why (kept in the file)")
    parser.set_defaults(handler=_revoke)


def _revoke(args: argparse.Namespace) -> int:
    from admitd.certs.revocation import RevocationError, append_deny_entry

    try:
        entry = append_deny_entry(
            args.deny_list,
            serial=args.serial,
            sha256=args.sha256,
            cert_file=args.cert,
            spiffe_id=args.spiffe_id,
            comment=args.comment,
        )
    except (RevocationError, OSError, ValueError) as exc:  # a bad entry or an unreadable file
        print(f"admitd revoke: nothing added: {exc}", file=sys.stderr)
        return 2
    print(f"{args.deny_list}: added {entry}", file=sys.stderr)
    return 0
