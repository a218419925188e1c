"""docs/runbooks/ops.md cannot drift from admitd: every marked command block runs, in order,
against a real dev stack (`admitd serve` with a real Redis, a local KMS keyring, key
custodians and signed audit checkpoints, behind the real Envoy `admitd dev` starts), and
what it did is checked. The offline key steps run with admitd stopped, as they say.

Two things a person does in a browser are set up by the test instead: the custodians'
passkey step-up (a session whose last step-up was a passkey, created through the admin API
as a login service would, plus the verification receipt admitd's passkey ceremony writes
to Redis after a user-verified assertion), and the CA publishing a new CRL.

A block is a ```sh fence preceded by `<!-- runbook: <step-id> [exit=N] -->`; its `$NAMES`
are shell variables the stack below supplies (the placeholder table at the top of the
runbook documents them). Each block runs under `bash -euo pipefail`, so an unknown command,
an unknown flag or an undefined placeholder fails the step. Every `admitd ...` in running
text is parsed by admitd's own argument parser (a flagless mention must name a command).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from admitd import __version__
from admitd._proto import keys_pb2
from admitd._proto import sessions_pb2 as pb
from admitd.admin.client import AdminClient, ClientTls
from admitd.cli import build_parser
from admitd.custody.cli import KeysClient
from admitd.devstack.processes import ProcessGroup, free_port, wait_for_port
from admitd.devstack.stack import DevPorts, start_dev_processes, write_dev_config
from admitd.mfa.passkey_store import PasskeyVerification, RedisPasskeyStore
from admitd.pki import DEV_FILES, Issued, issue_ca, issue_crl, issue_leaf
from admitd.sessions.redis_client import client_from_url
from tests.integration.redis_server import RedisServer

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl (Debian curl)"),
]

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "docs" / "runbooks" / "ops.md"
SECURITY = ROOT / "SECURITY.md"
ALERT_RULES = ROOT / "deploy" / "prometheus" / "admitd-alerts.yaml"
POLICIES = ROOT / "policies"

# The shared contract of issue 15: the runbook's sections and the alerts it answers.
SECTIONS = [
    "On call",
    "Revoke a user's sessions and tokens",
    "Revoke a certificate",
    "Rotate a KMS master key and re-encrypt",
    "Verify and export the audit log",
    "Coordinated disclosure",
    "Alerts",
]
ALERTS = [
    "AdmitdHighRiskBurst",
    "AdmitdCriticalRiskAttempts",
    "AdmitdBaselineDeviation",
    "AdmitdCaCertificateExpiringSoon",
    "AdmitdServerCertificateExpiringSoon",
    "AdmitdClientCertificatesExpiringSoon",
    "AdmitdCrlNextUpdateSoon",
    "AdmitdMasterKeyOld",
    "AdmitdDenyRateSpike",
    "AdmitdCheckLatencyHigh",
    "AdmitdSessionStoreUnavailable",
    "AdmitdAuditSpoolFilling",
    "AdmitdAuditAppendFailures",
    "AdmitdAuditSpoolRecordQuarantined",
    "AdmitdIdentityProviderUnavailable",
    "AdmitdNotReady",
]

MARKED = re.compile(
    r"<!-- runbook: (?P<id>[a-z0-9-]+)(?: exit=(?P<exit>\d+))? -->\n```sh\n(?P<body>.*?)\n```\n",
    re.DOTALL,
)
FENCE = re.compile(r"^```(\w*)$", re.MULTILINE)
# `"$NAME"` (one word) or a bare `$NAME` (split into words, as $ADMIN_TLS is meant to be).
PLACEHOLDER = re.compile(
    r'(?P<q>")?\$(?:\{(?P<braced>[A-Z_]+)\}|(?P<name>[A-Z_][A-Z0-9_]*))(?(q)")'
)
ANY_MARKER = re.compile(r"^<!--\s*runbook", re.MULTILINE)
INLINE_ADMITD = re.compile(r"(?<!`)`(admitd [^`]+)`(?!`)")
STATUS_LINE = re.compile(r"^HTTP/[\d.]+ (\d{3})", re.MULTILINE)


@dataclass(frozen=True)
class Block:
    step: str
    exit: int
    body: str

    @property
    def commands(self) -> list[str]:
        """Logical lines (backslash continuations joined), comments dropped."""
        joined = re.sub(r"\\\n\s*", " ", self.body)
        return [line.strip() for line in joined.splitlines() if line.strip()[:1] not in ("", "#")]


def runbook_text() -> str:
    return RUNBOOK.read_text(encoding="utf-8")


def runbook_blocks() -> list[Block]:
    return [Block(m["id"], int(m["exit"] or 0), m["body"]) for m in MARKED.finditer(runbook_text())]


def headings(level: int) -> list[str]:
    return re.findall(rf"^{'#' * level} (.+)$", runbook_text(), re.MULTILINE)


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def documented_placeholders() -> set[str]:
    rows = [line for line in runbook_text().splitlines() if line.startswith("| `$")]
    return {name for row in rows for name in re.findall(r"\$([A-Z_]+)", row.split("|")[1])}


def used_placeholders(text: str) -> set[str]:
    return {m["braced"] or m["name"] for m in PLACEHOLDER.finditer(text)}


def inline_commands() -> list[str]:
    """Every `admitd ...` in running text (outside fences), whitespace normalised."""
    prose = re.sub(r"^```.*?^```$", "", runbook_text(), flags=re.DOTALL | re.MULTILINE)
    return [" ".join(m.split()) for m in INLINE_ADMITD.findall(prose)]


# --- the runbook's shape ----------------------------------------------------------------


def test_sections_and_alert_headings_are_the_contract() -> None:
    assert headings(1) == ["admitd operations runbook"]
    assert headings(2) == SECTIONS
    text = runbook_text()
    alerts_part = text[text.index("\n## Alerts\n") :]
    assert headings(3) == ALERTS, "every ### heading is an alert, in the contract's order"
    assert re.findall(r"^### (.+)$", alerts_part, re.MULTILINE) == ALERTS
    for alert in ALERTS:
        section = alerts_part.split(f"### {alert}\n", 1)[1].split("\n### ", 1)[0]
        for part in ("**What it means.**", "**First checks.**", "**Fix.**"):
            assert part in section, f"{alert} has no {part}"


def test_every_alert_of_the_rules_file_has_a_heading() -> None:
    rules = yaml.safe_load(ALERT_RULES.read_text(encoding="utf-8"))
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert names <= set(ALERTS), f"alerts without a runbook heading: {names - set(ALERTS)}"
    anchors = {anchor(h) for h in headings(2) + headings(3)}
    for group in rules["groups"]:
        for rule in group["rules"]:
            url = rule.get("annotations", {}).get("runbook_url")
            if url is not None:
                assert url.rpartition("#")[2] in anchors, url


def test_links_resolve() -> None:
    anchors = {anchor(h) for h in headings(2) + headings(3)}
    assert "revoke-a-users-sessions-and-tokens" in anchors
    links = re.findall(r"\]\(([^)]+)\)", runbook_text())
    assert links
    for link in links:
        path, _, fragment = link.partition("#")
        if path:
            assert (RUNBOOK.parent / path).resolve().is_file(), link
        else:
            assert fragment in anchors, link
    assert "](../../SECURITY.md)" in runbook_text().split("## Coordinated disclosure", 1)[1]


def test_every_shell_block_is_marked_and_runs_admitd_or_reads_its_endpoints() -> None:
    text = runbook_text()
    fences = FENCE.findall(text)
    opened = fences[::2]  # every other fence line opens a block
    blocks = runbook_blocks()
    assert opened.count("sh") == len(blocks), "a ```sh block without a runbook marker"
    assert set(opened) <= {"sh", "promql"}, opened
    steps = [b.step for b in blocks]
    assert len(steps) == len(set(steps)), "step IDs repeat"
    for block in blocks:
        assert block.commands, block.step
        for command in block.commands:
            head, _, rest = command.partition(" | ")
            assert head.startswith(("admitd ", 'curl -sS "$METRICS/')), (block.step, command)
            assert not rest or rest.startswith("grep "), (block.step, command)
        if block.exit:
            assert len(block.commands) == 1, f"{block.step}: exit= needs a one-command block"


def test_placeholders_are_documented_and_not_admitd_overrides() -> None:
    documented = documented_placeholders()
    assert documented >= {"ADMIN_TLS", "CONFIG", "DENY_LIST", "METRICS", "REDIS_URL"}
    assert not {name for name in documented if name.startswith("ADMITD_")}
    used = used_placeholders("\n".join(b.body for b in runbook_blocks()))
    used |= used_placeholders("\n".join(inline_commands()))
    assert used <= documented, f"undocumented placeholders: {used - documented}"
    assert documented <= used, f"documented but never used: {documented - used}"


def substitute(command: str, values: dict[str, str]) -> list[str]:
    """The argv a shell makes of `command` (quoted placeholders stay one word)."""

    def value(match: re.Match[str]) -> str:
        text = values[match["braced"] or match["name"]]
        return shlex.quote(text) if match["q"] else text

    return shlex.split(PLACEHOLDER.sub(value, command))


def parses(argv: list[str]) -> tuple[bool, str]:
    """Whether admitd's own parser accepts `argv` (help and --version count as accepted)."""
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        try:
            build_parser().parse_args(argv)
        except SystemExit as exc:
            return exc.code in (0, None), err.getvalue()
    return True, ""


DUMMY = {
    "ADMIN_TLS": "--address 127.0.0.1:9443 --cert me.pem --key me.key --ca ca.pem",
    "APPROVER_TLS": "--address 127.0.0.1:9443 --cert you.pem --key you.key --ca ca.pem",
    "OLD_VERSION": "1",
    "METRICS": "http://127.0.0.1:9464",
}


def test_every_admitd_command_in_the_runbook_parses() -> None:
    values = {name: DUMMY.get(name, f"x-{name.lower()}") for name in documented_placeholders()}
    commands = [c for b in runbook_blocks() for c in b.commands if c.startswith("admitd ")]
    mentions = inline_commands()
    assert len(commands) >= 20 and len(mentions) >= 10
    for command in commands + mentions:
        argv = substitute(command, values)[1:]
        if not any(word.startswith("-") for word in argv):
            argv.append("--help")  # a mention by name: the command must exist
        ok, error = parses(argv)
        assert ok, f"{command}\n{error}"
    # and the check can fail
    assert not parses(["keys", "rotate", "--alias", "a", "--bogus"])[0]
    assert not parses(["sessions", "nuke", "--help"])[0]


def test_security_policy() -> None:
    text = SECURITY.read_text(encoding="utf-8")
    assert "security@admitd.example" in text
    for phrase in ("2 working days", "90 days", "In scope", "Out of scope"):
        assert phrase in text, phrase
    minor = ".".join(__version__.split(".")[:2])
    assert f"| {minor}.x | yes |" in text, "the supported versions name the current release"
    assert "docs/runbooks/ops.md#coordinated-disclosure" in text


# --- the dev stack the blocks run against -------------------------------------------------


@dataclass
class Pki:
    directory: Path
    root: Issued
    client_ca: Issued
    clients: dict[str, Issued]

    def pem(self, name: str) -> Path:
        return self.directory / f"{name}.pem"

    def key(self, name: str) -> Path:
        return self.directory / f"{name}.key"

    def publish_crl(self, revoked: list[Issued]) -> None:
        """What the CA does: a new CRL, replacing the file (an atomic rename, as a copy job would)."""
        staged = self.directory / "crl.new"
        staged.write_bytes(issue_crl(self.client_ca, [c.cert for c in revoked]))
        staged.replace(self.directory / DEV_FILES["crl"])


CLIENTS = {
    "alice": "spiffe://admitd.dev/user/alice",
    "mallory": "spiffe://admitd.dev/user/mallory",
    "carol": "spiffe://admitd.dev/user/carol",  # revoked through the CRL; expires in 10 days
    "dave": "spiffe://admitd.dev/user/dave",  # expires in 10 days, never revoked
    "ops": "spiffe://admitd.dev/admin/ops",
    "approver": "spiffe://admitd.dev/admin/approver",
}


SOON = ("carol", "dave")
# Key custodians: certificate principal -> the admitd user whose passkey vouches for them.
CUSTODIANS = {CLIENTS["ops"]: "olga", CLIENTS["approver"]: "piet"}


def write_pki(directory: Path) -> Pki:
    """The dev PKI's layout (admitd.pki.write_dev_pki), keeping the client CA to sign CRLs."""
    directory.mkdir(parents=True)
    root = issue_ca("admitd dev root CA")
    client_ca = issue_ca("admitd dev client CA", root)
    server = issue_leaf(
        root, "localhost", dns_names=("localhost",), ips=("127.0.0.1",), client=False, server=True
    )
    (directory / DEV_FILES["trust"]).write_bytes(root.cert_pem + client_ca.cert_pem)
    (directory / "root-ca.pem").write_bytes(root.cert_pem)
    (directory / DEV_FILES["server_cert"]).write_bytes(server.cert_pem + root.cert_pem)
    write_private(directory / DEV_FILES["server_key"], server.key_pem)
    (directory / DEV_FILES["deny_list"]).write_text("# serial:<hex> or sha256:<hex>\n")
    clients: dict[str, Issued] = {}
    soon = datetime.now(UTC) + timedelta(days=10)
    for name, uri in CLIENTS.items():
        leaf = issue_leaf(client_ca, name, uris=(uri,), not_after=soon if name in SOON else None)
        (directory / f"{name}.pem").write_bytes(leaf.cert_pem + client_ca.cert_pem)
        write_private(directory / f"{name}.key", leaf.key_pem)
        clients[name] = leaf
    pki = Pki(directory, root, client_ca, clients)
    pki.publish_crl([])
    return pki


def write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


@dataclass
class Stack:
    home: Path
    ports: DevPorts
    pki: Pki
    config: Path
    group: ProcessGroup
    redis_url: str
    env: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # name -> session token
    totp: pyotp.TOTP | None = None

    def admin(self) -> AdminClient:
        tls = ClientTls(
            self.pki.pem("ops"), self.pki.key("ops"), self.pki.directory / "root-ca.pem"
        )
        return AdminClient(f"127.0.0.1:{self.ports.admin}", tls)

    def create_session(self, name: str, user: str, role: str) -> str:
        """A session through the admin API (set-up, not a runbook step); returns its ID."""
        request = pb.CreateSessionRequest(
            user_id=user, organisation="acme", roles=[role], device_id="laptop", user_agent="curl"
        )
        with self.admin() as client:
            response = client.call(client.stub.CreateSession, request)
        self.tokens[name] = response.session_token
        return str(response.session_id)

    def keys(self) -> KeysClient:
        tls = ClientTls(
            self.pki.pem("ops"), self.pki.key("ops"), self.pki.directory / "root-ca.pem"
        )
        return KeysClient(f"127.0.0.1:{self.ports.admin}", tls)

    def step_up_with_passkey(self, user: str, token_file: Path) -> None:
        """What a custodian does in the browser: a session whose last step-up was a passkey
        (created as the login service would), and the receipt admitd's passkey ceremony
        writes after a user-verified assertion; the token goes into a 0600 file."""
        now = time.time()
        request = pb.CreateSessionRequest(
            user_id=user,
            organisation="acme",
            device_id="security-key",
            user_agent="curl",
            mfa_verified_at=now,
            mfa_method=pb.MFA_METHOD_PASSKEY,
        )
        with self.admin() as client:
            token = client.call(client.stub.CreateSession, request).session_token
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)

        async def receipt() -> None:
            redis = client_from_url(self.redis_url)
            await RedisPasskeyStore(redis).record_verification(
                user, PasskeyVerification(now, f"credential-of-{user}", "")
            )
            await redis.aclose()

        asyncio.run(receipt())

    def stop_admitd(self) -> None:
        self.group.stop("admitd")

    def start_admitd(self) -> None:
        argv = [sys.executable, "-m", "admitd", "serve", "--config", str(self.config)]
        process = self.group.start("admitd", argv)
        for port in (self.ports.authz, self.ports.web, self.ports.admin, self.ports.metrics):
            wait_for_port(port, process=process)

    def answer(self, path: str, client: str = "alice", token: str | None = None) -> tuple[int, str]:
        """(status, x-admitd-reason) of a request through Envoy with `client`'s certificate."""
        argv = ["curl", "-s", "-o", "/dev/null", "-D", "-", "--max-time", "5"]
        argv += ["--cacert", str(self.pki.directory / "root-ca.pem")]
        argv += ["--cert", str(self.pki.pem(client)), "--key", str(self.pki.key(client))]
        if token is not None:
            argv += ["-H", f"authorization: Bearer {self.tokens[token]}"]
        argv.append(f"https://localhost:{self.ports.https}{path}")
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        found = STATUS_LINE.search(done.stdout)
        assert found is not None, f"no answer from Envoy for {path}: {done.stderr}"
        reason = re.search(r"^x-admitd-reason: (\S+)", done.stdout, re.MULTILINE | re.IGNORECASE)
        return int(found.group(1)), reason.group(1) if reason else ""

    def becomes(
        self, expected: tuple[int, str], path: str, client: str = "alice", token: str | None = None
    ) -> None:
        """The answer turns into `expected` within a few revocation polls."""
        deadline = time.monotonic() + 8
        while (got := self.answer(path, client, token)) != expected:
            assert time.monotonic() < deadline, f"{path} as {client}/{token}: {got} != {expected}"
            time.sleep(0.2)


def augment_config(path: Path, home: Path) -> None:
    """The dev config plus what production has and the runbook needs: a local KMS keyring,
    signed audit checkpoints, fast revocation polls and a second risk approver."""
    config = yaml.safe_load(path.read_text())
    config["tls"]["revocation_poll_seconds"] = 0.5
    config["kms"] = {"provider": "local", "keyring": str(home / "keyring.json")}
    signing = Ed25519PrivateKey.generate()
    write_private(
        home / "audit-signing.key",
        signing.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    (home / "audit.pub").write_bytes(
        signing.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    config["audit"].update(
        signing_key_file="audit-signing.key",
        public_key_file="audit.pub",
        checkpoint_interval_seconds=1,
    )
    config["admin"]["principals"].append(CLIENTS["approver"])
    config["risk"]["approvers"].append(CLIENTS["approver"])
    config["keys"] = {"custodians": CUSTODIANS}
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def block_env(stack: Stack, redis: RedisServer) -> dict[str, str]:
    pki, ports = stack.pki, stack.ports
    base = {k: v for k, v in os.environ.items() if not k.startswith("ADMITD_")}
    base["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}"

    def tls(name: str) -> str:
        argv = ["--address", f"127.0.0.1:{ports.admin}", "--cert", str(pki.pem(name))]
        argv += ["--key", str(pki.key(name)), "--ca", str(pki.directory / "root-ca.pem")]
        return shlex.join(argv)

    request = stack.home / "refused-request.yaml"
    request.write_text(
        "request: {method: GET, path: /admin/users}\nprincipal: spiffe://admitd.dev/user/mallory\n"
    )
    mallory = pki.clients["mallory"].cert
    return base | {
        "CONFIG": str(stack.config),
        "REDIS_URL": redis.url,
        "ADMIN_TLS": tls("ops"),
        "APPROVER_TLS": tls("approver"),
        "METRICS": f"http://127.0.0.1:{ports.metrics}",
        "DENY_LIST": str(pki.directory / DEV_FILES["deny_list"]),
        "POLICIES": str(POLICIES),
        "REQUEST": str(request),
        "USER_ID": "ana",
        "ORG": "acme",
        "DEVICE_ID": "laptop-2",
        "TOKEN_FILE": str(stack.home / "leaked.token"),
        "CERT_PEM": str(pki.pem("mallory")),
        "SERIAL": f"{mallory.serial_number:x}",
        "SPIFFE_ID": CLIENTS["mallory"],
        "ALIAS": "kms/session-secrets",
        "OLD_VERSION": "1",
        "AUDIT_PUBLIC_KEY": str(stack.home / "audit.pub"),
        "MY_SESSION": str(stack.home / "olga.session"),
        "APPROVER_SESSION": str(stack.home / "piet.session"),
        "SINCE": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="seconds"),
        "EXPORT": str(stack.home / "audit-export.jsonl"),
        "REASON": "runbook test: laptop reported stolen",
        # SESSION_ID, CHANGE_ID, OVERRIDE_ID: what earlier steps print (set by the walk).
    }


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("runbook")
    pki = write_pki(home / "pki")
    names = ("https", "authz", "metrics", "upstream", "envoy_admin", "web", "admin")
    ports = DevPorts(**{name: free_port() for name in names})
    admitd_yaml, envoy_yaml = write_dev_config(home, POLICIES, ports, redis_server.url)
    augment_config(admitd_yaml, home)
    created = subprocess.run(
        [sys.executable, "-m", "admitd", "keys", "init", "--config", str(admitd_yaml)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    with ProcessGroup(home / "logs") as group:
        start_dev_processes(group, admitd_yaml, envoy_yaml, ports)
        for port in (ports.admin, ports.metrics):
            wait_for_port(port)
        built = Stack(home, ports, pki, admitd_yaml, group, redis_server.url)
        built.env = block_env(built, redis_server)
        yield built


# --- the walk: every block, in order, with what each step must have done ------------------


def metric_samples(output: str, name: str) -> list[tuple[str, float]]:
    """(labels, value) of each sample of `name` in a /metrics excerpt."""
    pattern = re.compile(rf"^{name}(\{{[^}}]*\}})? (\S+)$", re.MULTILINE)
    return [(m.group(1) or "", float(m.group(2))) for m in pattern.finditer(output)]


class Walk:
    """`before_<step>` and `after_<step>` (step ID, `-` as `_`) run around that block."""

    def __init__(self, stack: Stack) -> None:
        self.s = stack
        self.env = stack.env

    def hooks(self) -> set[str]:
        return {
            name.split("_", 1)[1].replace("_", "-")
            for name in dir(self)
            if name.startswith(("before_", "after_"))
        }

    def run(self, block: Block) -> subprocess.CompletedProcess[str]:
        hook = block.step.replace("-", "_")
        if before := getattr(self, f"before_{hook}", None):
            before()
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block.body],
            env=self.env,
            cwd=self.s.home,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == block.exit, (
            f"step {block.step} exited {done.returncode}, the runbook says {block.exit}:\n"
            f"{block.body}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )
        if after := getattr(self, f"after_{hook}", None):
            after(done)
        return done

    # On call
    def after_oncall_readyz(self, done: subprocess.CompletedProcess[str]) -> None:
        report = json.loads(done.stdout)
        assert report["status"] == "ready"
        assert {"policy", "redis", "kms", "audit_spool", "shutdown"} <= set(report["checks"])

    def after_oncall_check_config(self, done: subprocess.CompletedProcess[str]) -> None:
        assert f"{self.env['CONFIG']}: ok (" in done.stdout

    # Sessions: ana has three; one leaks (token file), one is revoked by ID, then all.
    def before_sessions_list(self) -> None:
        self.s.create_session("leaked", "ana", "viewer")
        self.env["SESSION_ID"] = self.s.create_session("by-id", "ana", "viewer")
        self.s.create_session("last", "ana", "viewer")
        Path(self.env["TOKEN_FILE"]).write_text(self.s.tokens["leaked"] + "\n")
        for token in ("leaked", "by-id", "last"):
            assert self.s.answer("/reports/q3", token=token) == (200, "")

    def after_sessions_list(self, done: subprocess.CompletedProcess[str]) -> None:
        assert done.stdout.count("\tactive\t") == 3
        assert self.env["SESSION_ID"] in done.stdout

    def after_sessions_revoke_token(self, done: subprocess.CompletedProcess[str]) -> None:
        assert done.stdout.strip() == "revoked"
        self.s.becomes((401, "session_invalid"), "/reports/q3", token="leaked")
        assert self.s.answer("/reports/q3", token="by-id") == (200, "")

    def after_sessions_revoke_id(self, done: subprocess.CompletedProcess[str]) -> None:
        assert done.stdout.strip() == "revoked"
        self.s.becomes((401, "session_invalid"), "/reports/q3", token="by-id")
        assert self.s.answer("/reports/q3", token="last") == (200, "")

    def after_sessions_revoke_user(self, done: subprocess.CompletedProcess[str]) -> None:
        assert done.stdout.strip() == "revoked 1 session(s)"
        self.s.becomes((401, "session_invalid"), "/reports/q3", token="last")

    def after_sessions_list_after(self, done: subprocess.CompletedProcess[str]) -> None:
        assert "\tactive\t" not in done.stdout, done.stdout

    # Certificates: mallory through the deny list (three ways), carol through the CRL.
    def deny_list(self) -> str:
        return Path(self.env["DENY_LIST"]).read_text()

    def before_revoke_cert(self) -> None:
        assert self.s.answer("/api/hello", client="mallory") == (200, "")

    def after_revoke_cert(self, done: subprocess.CompletedProcess[str]) -> None:
        assert re.search(r"^tbs-sha256:[0-9a-f]{64}  # runbook test", self.deny_list(), re.M)
        self.s.becomes((495, "revoked"), "/api/hello", client="mallory")
        assert self.s.answer("/api/hello", client="alice") == (200, "")

    def after_revoke_serial(self, done: subprocess.CompletedProcess[str]) -> None:
        assert f"\nserial:{self.env['SERIAL']}  # runbook test" in self.deny_list()

    def after_revoke_spiffe(self, done: subprocess.CompletedProcess[str]) -> None:
        assert f"\nspiffe:{self.env['SPIFFE_ID']}  # runbook test" in self.deny_list()

    def after_revoke_reloaded(self, done: subprocess.CompletedProcess[str]) -> None:
        applied = [
            v
            for labels, v in metric_samples(done.stdout, "admitd_revocation_reloads_total")
            if 'outcome="applied"' in labels
        ]
        assert applied and applied[0] >= 1, done.stdout

    def before_crl_check_config(self) -> None:
        assert self.s.answer("/api/hello", client="carol") == (200, "")
        self.s.pki.publish_crl([self.s.pki.clients["carol"]])  # the CA's step

    def after_crl_check_config(self, done: subprocess.CompletedProcess[str]) -> None:
        assert ": ok (" in done.stdout
        self.s.becomes((495, "revoked"), "/api/hello", client="carol")

    # Keys: fin's TOTP secret is sealed under kms/session-secrets v1 before the rotation.
    # Custody (running): v1 -> v2, re-encrypt, retire v1. Offline (stopped): v2 -> v3.
    def before_keys_list_remote_before(self) -> None:
        with self.s.admin() as client:
            begun = client.call(
                client.stub.BeginTotpEnrolment,
                pb.BeginTotpEnrolmentRequest(user_id="fin", organisation="acme"),
            )
            totp = pyotp.parse_uri(begun.provisioning_uri)
            assert isinstance(totp, pyotp.TOTP)
            confirmed = client.call(
                client.stub.ConfirmTotpEnrolment,
                pb.ConfirmTotpEnrolmentRequest(user_id="fin", organisation="acme", code=totp.now()),
            )
            assert confirmed.result == pb.MFA_RESULT_OK
        self.s.totp = totp
        self.s.create_session("fin", "fin", "finance")
        assert self.s.answer("/finance/ledger", token="fin") == (428, "mfa_step_up_required")
        self.s.step_up_with_passkey("olga", Path(self.env["MY_SESSION"]))
        self.s.step_up_with_passkey("piet", Path(self.env["APPROVER_SESSION"]))

    def after_keys_list_remote_before(self, done: subprocess.CompletedProcess[str]) -> None:
        assert "kms/session-secrets\tv1\tactive\t" in done.stdout
        assert "kms/session-secrets\tv2" not in done.stdout

    def requested(self, done: subprocess.CompletedProcess[str], kind: str) -> None:
        change = done.stdout.splitlines()[0].split("\t")
        assert change[1:3] == ["pending", kind], done.stdout
        assert f"requested_by={CLIENTS['ops']} (olga)" in change, done.stdout
        self.env["CHANGE_ID"] = change[0]

    def approved(self, done: subprocess.CompletedProcess[str], status: str) -> str:
        change = done.stdout.splitlines()[0].split("\t")
        assert change[:2] == [self.env["CHANGE_ID"], status], done.stdout
        assert f"approved_by={CLIENTS['approver']} (piet)" in change, done.stdout
        return done.stdout

    def after_keys_request_rotate(self, done: subprocess.CompletedProcess[str]) -> None:
        self.requested(done, "rotate")

    def after_keys_approve_rotate(self, done: subprocess.CompletedProcess[str]) -> None:
        assert "v2" in self.approved(done, "applied")

    def after_keys_request_reencrypt(self, done: subprocess.CompletedProcess[str]) -> None:
        self.requested(done, "reencrypt")

    def after_keys_approve_reencrypt(self, done: subprocess.CompletedProcess[str]) -> None:
        status = done.stdout.split("\t")[1]
        assert status in ("approved", "applied"), done.stdout  # it runs in the background
        self.approved(done, status)

    def after_keys_changes(self, done: subprocess.CompletedProcess[str]) -> None:
        assert self.env["CHANGE_ID"] in done.stdout
        deadline = time.monotonic() + 15
        with self.s.keys() as client:
            while True:
                changes = client.call(
                    client.stub.ListKeyChanges, keys_pb2.ListKeyChangesRequest()
                ).changes
                change = next(c for c in changes if c.change_id == self.env["CHANGE_ID"])
                if change.status != keys_pb2.KEY_CHANGE_STATUS_APPROVED:
                    break
                assert time.monotonic() < deadline, "the re-encryption never finished"
                time.sleep(0.2)
        assert change.status == keys_pb2.KEY_CHANGE_STATUS_APPLIED, change
        found = re.search(r"(\d+) re-wrapped", change.result)
        assert found is not None and int(found.group(1)) >= 1, change.result

    def after_keys_list_remote_after(self, done: subprocess.CompletedProcess[str]) -> None:
        assert "kms/session-secrets\tv1\tdecrypt-only\t" in done.stdout
        assert "kms/session-secrets\tv2\tactive\t" in done.stdout

    def after_keys_request_retire(self, done: subprocess.CompletedProcess[str]) -> None:
        self.requested(done, "retire")

    def after_keys_approve_retire(self, done: subprocess.CompletedProcess[str]) -> None:
        self.approved(done, "applied")
        # fin's secret, re-wrapped under v2, still opens with v1 destroyed: step up and in.
        assert self.verify_fin(valid=True) == pb.MFA_RESULT_OK
        self.s.becomes((200, ""), "/finance/ledger", token="fin")

    def verify_fin(self, *, valid: bool) -> int:
        """A TOTP check of fin's session; either answer needs the sealed secret opened."""
        totp = self.s.totp
        assert totp is not None
        now = time.time()
        code = totp.at(now + 30)
        if not valid:
            near = {totp.at(now + step) for step in (-60, -30, 0, 30, 60)}
            code = next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in near)
        with self.s.admin() as client:
            verified = client.call(
                client.stub.VerifyMfa,
                pb.VerifyMfaRequest(session_token=self.s.tokens["fin"], code=code),
            )
        return int(verified.result)

    def before_keys_offline_rotate(self) -> None:
        self.s.stop_admitd()  # "with the deployment stopped"
        self.env["OLD_VERSION"] = "2"

    def after_keys_offline_rotate(self, done: subprocess.CompletedProcess[str]) -> None:
        assert "kms/session-secrets: v3 is now active" in done.stdout

    def after_keys_offline_reencrypt(self, done: subprocess.CompletedProcess[str]) -> None:
        found = re.search(r"(\d+) re-wrapped, \d+ already current, 0 failed", done.stdout)
        assert found is not None and int(found.group(1)) >= 1, done.stdout

    def after_keys_offline_retire(self, done: subprocess.CompletedProcess[str]) -> None:
        assert "kms/session-secrets: v2 retired" in done.stdout

    def after_keys_offline_list(self, done: subprocess.CompletedProcess[str]) -> None:
        for version, state in (("v1", "retired"), ("v2", "retired"), ("v3", "active")):
            assert f"kms/session-secrets\t{version}\t{state}\t" in done.stdout, done.stdout
        self.s.start_admitd()  # "then start the deployment again"
        # Under v3 only, fin's secret opens (a wrong code is told apart from a broken record),
        # and revocations made before the restart still hold.
        assert self.verify_fin(valid=False) == pb.MFA_RESULT_INVALID
        self.s.becomes((495, "revoked"), "/api/hello", client="mallory")
        self.s.becomes((495, "revoked"), "/api/hello", client="carol")

    # Audit
    def after_audit_verify(self, done: subprocess.CompletedProcess[str]) -> None:
        found = re.search(r"^ok: (\d+) entries .*; (\d+) checkpoints matched", done.stdout, re.M)
        assert found is not None, done.stdout
        assert int(found.group(1)) >= 10 and int(found.group(2)) >= 1, done.stdout

    def after_audit_export(self, done: subprocess.CompletedProcess[str]) -> None:
        export = Path(self.env["EXPORT"])
        assert stat.S_IMODE(export.stat().st_mode) == 0o600
        lines = [json.loads(line) for line in export.read_text().splitlines()]
        events = {line["entry"]["event_type"] for line in lines if line.get("type") == "entry"}
        expected = {"session.revoked", "kms.key.rotated", "kms.key.retired"}
        expected |= {"kms.key_change.requested", "kms.key_change.applied", "kms.offline.started"}
        assert expected <= events, events
        assert any(line.get("type") == "checkpoint" for line in lines)

    def after_audit_verify_export(self, done: subprocess.CompletedProcess[str]) -> None:
        assert done.stdout.startswith("ok: "), done.stdout

    def after_disclosure_version(self, done: subprocess.CompletedProcess[str]) -> None:
        assert done.stdout.strip() == f"admitd {__version__}"

    # Alerts
    def after_alert_baseline_show(self, done: subprocess.CompletedProcess[str]) -> None:
        assert "organisation\tacme\n" in done.stdout

    def after_alert_baseline_request(self, done: subprocess.CompletedProcess[str]) -> None:
        first = done.stdout.splitlines()[0].split("\t")
        assert first[1:3] == ["pending", "trust_device"], done.stdout
        self.env["OVERRIDE_ID"] = first[0]

    def after_alert_baseline_pending(self, done: subprocess.CompletedProcess[str]) -> None:
        assert self.env["OVERRIDE_ID"] in done.stdout

    def after_alert_baseline_approve(self, done: subprocess.CompletedProcess[str]) -> None:
        assert f"{self.env['OVERRIDE_ID']}\tapproved\t" in done.stdout
        assert f"approved_by={CLIENTS['approver']}" in done.stdout

    def after_alert_ca_expiry(self, done: subprocess.CompletedProcess[str]) -> None:
        samples = metric_samples(done.stdout, "admitd_ca_certificate_expiry_seconds")
        kinds = {kind for labels, _ in samples for kind in re.findall(r'kind="(\w+)"', labels)}
        assert kinds == {"root", "intermediate"}, done.stdout
        assert all(v > 300 * 86400 for _, v in samples), done.stdout

    def after_alert_server_expiry(self, done: subprocess.CompletedProcess[str]) -> None:
        samples = metric_samples(done.stdout, "admitd_server_certificate_expiry_seconds")
        assert any('listener="admin"' in labels and v > 0 for labels, v in samples), done.stdout

    def before_alert_client_expiry(self) -> None:
        assert self.s.answer("/api/hello", client="dave") == (200, "")  # seen: 10 days left

    def after_alert_client_expiry(self, done: subprocess.CompletedProcess[str]) -> None:
        samples = metric_samples(done.stdout, "admitd_client_certificates_expiring")
        assert any("admitd dev client CA" in labels and v >= 1 for labels, v in samples), (
            "dave's certificate (10 days left) was seen: " + done.stdout
        )

    def after_alert_crl_next_update(self, done: subprocess.CompletedProcess[str]) -> None:
        samples = metric_samples(done.stdout, "admitd_crl_next_update_seconds")
        assert any("admitd dev client CA" in labels and v > 86400 for labels, v in samples)

    def after_alert_master_key_versions(self, done: subprocess.CompletedProcess[str]) -> None:
        assert "kms/session-secrets\tv3\tactive\t" in done.stdout

    def after_alert_deny_metrics(self, done: subprocess.CompletedProcess[str]) -> None:
        denied = metric_samples(done.stdout, "admitd_decisions_total")
        assert any(
            'outcome="deny"' in labels and 'reason="revoked"' in labels for labels, _ in denied
        )

    def after_alert_deny_policy_test(self, done: subprocess.CompletedProcess[str]) -> None:
        assert re.search(r"^\d+ passed, 0 failed$", done.stdout, re.M), done.stdout

    def after_alert_deny_explain(self, done: subprocess.CompletedProcess[str]) -> None:
        assert "identity_not_allowed" in done.stdout, done.stdout

    def after_alert_audit_appends(self, done: subprocess.CompletedProcess[str]) -> None:
        appends = dict(metric_samples(done.stdout, "admitd_audit_appends_total"))
        assert appends['{outcome="redis"}'] >= 1 and appends['{outcome="dropped"}'] == 0

    def after_alert_not_ready(self, done: subprocess.CompletedProcess[str]) -> None:
        report, _ = json.JSONDecoder().raw_decode(done.stdout)  # /readyz, then the gauges
        assert report["status"] == "ready"
        gauges = metric_samples(done.stdout, "admitd_ready_check")
        assert {'{check="redis"}', '{check="kms"}'} <= {labels for labels, _ in gauges}
        assert all(value == 1 for _, value in gauges), gauges


def test_every_runbook_block_runs_against_a_dev_stack(stack: Stack) -> None:
    blocks = runbook_blocks()
    walk = Walk(stack)
    steps = {block.step for block in blocks}
    assert walk.hooks() <= steps, (
        f"checks for steps the runbook no longer has: {walk.hooks() - steps}"
    )
    started, ran = time.monotonic(), []
    for block in blocks:
        walk.run(block)
        ran.append(block.step)
    # Every marker was understood (a misspelt one would be skipped silently otherwise).
    assert ran == [block.step for block in blocks]
    assert len(ran) == len(ANY_MARKER.findall(runbook_text())) == 48
    print(f"{len(ran)} runbook blocks ran in {time.monotonic() - started:.1f} s")
