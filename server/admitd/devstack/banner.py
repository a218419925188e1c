"""What `admitd dev` prints once the stack is up: commands that run as printed, with what
each answers. The banner is rendered from `banner_steps()`, and a test runs the same steps
against a real stack, so every promised status is checked (tests/e2e/test_dev_banner.py).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from admitd.admin.printed_commands import CODE, admitd_program, shell_line, shown_path
from admitd.web.dev_sign_in import DEV_SIGN_IN_PATH
from admitd.web.dev_users import DEV_USERS

if TYPE_CHECKING:
    from admitd.devstack.stack import DevOidc, DevPorts

__all__ = ["CODE", "Step", "banner_steps", "banner_text"]


@dataclass(frozen=True, slots=True)
class Step:
    """One printed command: the comment above it, the shell line, and what it answers."""

    says: str
    line: str
    status: int | None = None  # the HTTP status this curl answers; None: the command exits 0
    heading: str | None = None  # printed before the step: the start of a group of steps


def banner_steps(home: Path, ports: DevPorts) -> tuple[Step, ...]:
    """The steps in the order a person runs them (later ones use files earlier ones write)."""
    return (*_edge_steps(home, ports), *_session_steps(home, ports))


def _edge_steps(home: Path, ports: DevPorts) -> tuple[Step, ...]:
    url, pki = f"https://localhost:{ports.https}", home / "pki"
    ca = f"curl -s -i --cacert {_q(pki / 'root-ca.pem')}"
    alice = f"{ca} {_client('alice', pki)}"
    return (
        Step(
            "200 from the echo upstream, which sees x-admitd-principal: "
            "spiffe://admitd.dev/user/alice",
            f"{alice} {url}/api/hello",
            200,
            heading="Try (each curl prints the status line first):",
        ),
        Step(
            '495 {"error":{"code":"client_certificate_required",...}}: no client certificate',
            f"{ca} {url}/api/hello",
            495,
        ),
        Step(
            "495 identity_not_allowed: mallory is a valid client, but not on /admin/",
            f"{ca} {_client('mallory', pki)} {url}/admin/users",
            495,
        ),
        Step("200 without a certificate: /healthz is a public route", f"{ca} {url}/healthz", 200),
    )


def _session_steps(home: Path, ports: DevPorts) -> tuple[Step, ...]:
    url, pki = f"https://localhost:{ports.https}", home / "pki"
    alice = f"curl -s -i --cacert {_q(pki / 'root-ca.pem')} {_client('alice', pki)}"
    connection = ["--address", f"127.0.0.1:{ports.admin}"]
    connection += ["--cert", shown_path(pki / "ops.pem"), "--key", shown_path(pki / "ops.key")]
    connection += ["--ca", shown_path(pki / "root-ca.pem")]

    def admin(command: str) -> str:
        return shell_line([*admitd_program(), "sessions", command, *connection])

    ana, fin = _q(home / "ana.token"), _q(home / "fin.token")

    def bearer(token: str) -> str:
        return f'{alice} -H "authorization: Bearer $(cat {token})"'

    return (
        Step(
            "a session for ana (viewer) through the admin API; the token is printed once",
            f"{admin('create')} --user ana --org acme --role viewer --device laptop > {ana}",
            heading="Sessions and MFA (policies/routes.yaml): /reports/ wants any session;"
            " /finance/ a finance or admin role, with MFA under 15 minutes:",
        ),
        Step("200: a viewer needs no MFA", f"{bearer(ana)} {url}/reports/q3", 200),
        Step(
            "403 role_required: a viewer is not let into /finance/",
            f"{bearer(ana)} {url}/finance/ledger",
            403,
        ),
        Step(
            "a privileged user enrols a factor first: prints the otpauth:// URI for fin's app"
            " (--qr-png FILE: as a QR code) and the totp-confirm command to run with its code",
            f"{admin('totp-enrol')} --user fin --org acme",
        ),
        Step(
            "a session for fin (finance: privileged, so only once a factor is active)",
            f"{admin('create')} --user fin --org acme --role finance --device laptop > {fin}",
        ),
        Step(
            "428 mfa_step_up_required: finance needs a fresh second factor",
            f"{bearer(fin)} {url}/finance/ledger",
            428,
        ),
        Step(
            f"step up fin's session: {CODE} is the app's next code (a code is accepted once)",
            f"{admin('verify')} --token-file {fin} --code {CODE}",
        ),
        Step("200: fresh MFA", f"{bearer(fin)} {url}/finance/ledger", 200),
    )


def banner_text(home: Path, ports: DevPorts, oidc: DevOidc | None = None) -> str:
    """The whole banner; with `oidc`, browsers sign in at that IdP, not the dev sign-in page."""
    lines = [
        "",
        f"admitd dev stack is up (Ctrl-C stops everything). Logs: {shown_path(home / 'logs')}",
        f"  Envoy (TLS, mTLS optional)  https://localhost:{ports.https}",
        f"  admitd Check (gRPC)         127.0.0.1:{ports.authz}",
        f"  metrics                     http://127.0.0.1:{ports.metrics}/metrics",
        f"Run the commands below from this directory ({Path.cwd()}).",
    ]
    for step in banner_steps(home, ports):
        if step.heading:
            lines += ["", step.heading]
        lines += [f"  # {step.says}", f"  {step.line}"]
    return "\n".join(lines) + "\n" + _browser_text(home, ports.https, oidc)


def _browser_text(home: Path, https: int, oidc: DevOidc | None) -> str:
    """How to walk the browser flow: the routes need a client certificate in the browser."""
    url, pki = f"https://localhost:{https}", home / "pki"
    lines = [
        "",
        "In a browser (import alice's certificate first; any export password):",
        f"  openssl pkcs12 -export -in {_q(pki / 'alice.pem')} -inkey {_q(pki / 'alice.key')}"
        f" -out {_q(pki / 'alice.p12')}",
        f"  then open {url}/finance/ledger (or {url}/reports/q3, which a viewer may read)",
    ]
    if oidc is not None:
        lines.append(f"  you sign in at {oidc.issuer} (client {oidc.client_id}); register")
        lines.append(f"  the redirect URI {url}/.admitd/oidc/callback there")
        return "\n".join(lines) + "\n"
    lines.append(f"  no session: you land on the dev sign-in page, {url}{DEV_SIGN_IN_PATH}:")
    lines.append("  pick a user (tick 'Also enrol an authenticator app' for a QR code)")
    lines.extend(
        f"    {user.user_id:<4} {user.organisation:<7} {user.role_list:<8} {user.note}"
        for user in DEV_USERS
    )
    return "\n".join(lines) + "\n"


def _client(name: str, pki: Path) -> str:
    return f"--cert {_q(pki / f'{name}.pem')} --key {_q(pki / f'{name}.key')}"


def _q(path: Path) -> str:
    return shlex.quote(shown_path(path))
