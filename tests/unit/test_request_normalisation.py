"""Host and path normalisation: every spelling of a name gets the same route; odd paths get 400."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from envoy.service.auth.v3.external_auth_pb2 import CheckRequest

from admitd.core.decide import decide
from admitd.core.decision import Reason
from admitd.core.facts import CertificateFacts, Facts
from admitd.core.route import PolicySet
from admitd.errors import ConfigError
from admitd.extauthz.request import context_from_check_request
from admitd.policy.loader import load_policies
from tests.pki_fixtures import PkiSet, url_pem
from tests.unit.helpers import engine_for, request

POLICY = """
routes:
  - name: secure
    match: {hosts: [secure.example.com]}
    identities: any
  - name: corp
    match: {hosts: ["*.corp"]}
    identities: any
  - name: written-loosely
    match: {hosts: ["Loose.Example.", "Bücher.Example", "*.Wild.Example."]}
    identities: any
  - name: loopback
    match: {hosts: ["127.0.0.1", "[::1]"]}
    identities: any
  - name: public
    match: {path_prefix: /public/}
    public: true
  - name: catch-all
    match: {path_prefix: /}
    public: true
"""
OPTED_IN = """
  - name: reports
    match: {path_prefix: /reports/}
    public: true
    allow_path_parameters: true
"""


@pytest.fixture
def policy(tmp_path: Path) -> PolicySet:
    (tmp_path / "p.yaml").write_text(POLICY)
    return load_policies(tmp_path / "p.yaml")


@pytest.fixture
def opted_in(tmp_path: Path) -> PolicySet:
    (tmp_path / "p.yaml").write_text(POLICY.replace("routes:\n", "routes:\n" + OPTED_IN[1:], 1))
    return load_policies(tmp_path / "p.yaml")


def check_request(host: str, path: str = "/anything") -> CheckRequest:
    message = CheckRequest()
    http = message.attributes.request.http
    http.method, http.path, http.host, http.scheme = "GET", path, host, "https"
    http.headers.update({":authority": host, "x-forwarded-proto": "https"})
    return message


@pytest.mark.parametrize(
    ("host", "route"),
    [
        ("secure.example.com", "secure"),
        ("secure.example.com.", "secure"),
        ("SECURE.Example.COM.", "secure"),
        ("secure.example.com:8443", "secure"),
        ("secure.example.com.:8443", "secure"),
        ("secure.example.com:", "secure"),  # RFC 3986 §3.2.3: an empty port is no port
        ("\uff53\uff45\uff43\uff55\uff52\uff45.example.com", "secure"),  # fullwidth: IDNA maps it
        ("a.corp", "corp"),
        ("a.corp.", "corp"),
        ("A.B.CORP.:443", "corp"),
        ("loose.example", "written-loosely"),
        ("LOOSE.EXAMPLE.:1", "written-loosely"),
        ("bücher.example", "written-loosely"),
        ("xn--bcher-kva.example.", "written-loosely"),
        ("BÜCHER.example", "written-loosely"),
        ("x.wild.example.", "written-loosely"),
        ("127.0.0.1:8443", "loopback"),
        ("[::1]:8443", "loopback"),
        ("[0:0::1]", "loopback"),
        ("example.org.", "catch-all"),
    ],
)
def test_every_spelling_of_a_name_matches_the_same_route(
    policy: PolicySet, host: str, route: str
) -> None:
    ctx = context_from_check_request(check_request(host))
    assert ctx.malformed == ()
    matched = policy.route_for(ctx)
    assert matched is not None and matched.name == route


@pytest.mark.parametrize(
    "host",
    [
        pytest.param("", id="empty"),
        pytest.param(".", id="only-a-dot"),
        pytest.param("secure.example.com..", id="two-trailing-dots"),
        pytest.param("secure..example.com", id="empty-label"),
        pytest.param(".secure.example.com", id="leading-dot"),
        pytest.param("bad_host.example.com", id="underscore"),
        pytest.param("-x.example.com", id="leading-hyphen"),
        pytest.param("x-.example.com", id="trailing-hyphen"),
        pytest.param("exa mple.com", id="space"),
        pytest.param("user@secure.example.com", id="userinfo"),
        pytest.param("%73ecure.example.com", id="percent-encoded"),
        pytest.param("secure.example.com:99999", id="port-out-of-range"),
        pytest.param("secure.example.com:8a", id="port-not-digits"),
        pytest.param("secure.example.com:80:80", id="two-ports"),
        pytest.param("a" * 64 + ".example.com", id="label-too-long"),
        pytest.param(".".join(["a" * 60] * 5), id="name-too-long"),
        pytest.param("1.2.3", id="short-ipv4"),
        pytest.param("010.0.0.1", id="octal-ipv4"),
        pytest.param("0x7f.0.0.1", id="hex-ipv4"),
        pytest.param("256.0.0.1", id="ipv4-out-of-range"),
        pytest.param("example.0x1", id="numeric-last-label"),
        pytest.param("[::1", id="unclosed-bracket"),
        pytest.param("[::1]x", id="junk-after-bracket"),
        pytest.param("[fe80::1%25eth0]", id="ipv6-zone"),
        pytest.param("[secure.example.com]", id="bracketed-name"),
        pytest.param("::1", id="unbracketed-ipv6"),
        pytest.param("xn--.example", id="punycode-prefix-trailing-hyphen"),
        pytest.param("☃" * 70 + ".example", id="idna-label-too-long"),
        pytest.param("a\u3000b.example", id="idna-maps-to-a-space"),
    ],
)
def test_invalid_host_is_malformed(policy: PolicySet, host: str) -> None:
    ctx = context_from_check_request(check_request(host))
    decision = decide(ctx, policy, Facts(CertificateFacts.missing()))
    assert (decision.reason, decision.status) == (Reason.REQUEST_MALFORMED, 400)
    assert "host" in decision.message.lower()


@pytest.mark.parametrize(
    ("hosts", "fix"),
    [
        ('["secure.example.com:8443"]', "port"),
        ('["bad_host.example"]', "host name"),
        ('["a..b"]', "host name"),
        ('["*."]', "host name"),
        ('["a.*.example"]', "host name"),
    ],
)
def test_policy_hosts_are_validated_at_load(tmp_path: Path, hosts: str, fix: str) -> None:
    (tmp_path / "p.yaml").write_text(
        f"routes:\n  - name: x\n    match: {{hosts: {hosts}}}\n    identities: any\n"
    )
    with pytest.raises(ConfigError, match=r"p\.yaml:3: routes\[0\]\.match\.hosts") as raised:
        load_policies(tmp_path / "p.yaml")
    assert fix in str(raised.value)


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/public/..;/admin/users", id="dot-dot-semicolon"),
        pytest.param("/public/..;jsessionid=1/admin/users", id="dot-dot-with-parameter"),
        pytest.param("/public/.;/admin/users", id="dot-semicolon"),
        pytest.param("/public/..;", id="at-the-end"),
        pytest.param("/public/..%3b/admin/users", id="encoded-semicolon"),
        pytest.param("/public/..%3B/admin/users", id="encoded-semicolon-upper"),
        pytest.param("/public/%2e%2e;/admin/users", id="encoded-dots"),
        pytest.param("/public/%252e%252e/admin/users", id="double-encoded-dots"),
        pytest.param("/public/%252E%252E%252Fadmin", id="double-encoded-slash"),
        pytest.param("/public/..%253b/admin/users", id="double-encoded-semicolon"),
    ],
)
def test_dot_segments_with_parameters_are_malformed(policy: PolicySet, path: str) -> None:
    ctx = context_from_check_request(check_request("secure.example.com", path))
    decision = decide(ctx, policy, Facts(CertificateFacts.missing()))
    assert (decision.reason, decision.status) == (Reason.REQUEST_MALFORMED, 400)


@pytest.mark.parametrize(
    "path",
    ["/public/report;v=2", "/public/a;", "/public/a%3bb", "/x;y/public/", "/other;"],
)
def test_semicolon_is_refused_unless_the_route_allows_it(policy: PolicySet, path: str) -> None:
    decision = decide(request(path, host="x.example"), policy, Facts(CertificateFacts.missing()))
    assert (decision.reason, decision.status) == (Reason.REQUEST_MALFORMED, 400)
    assert "';'" in decision.message


@pytest.mark.parametrize("path", ["/reports/q3;v=2", "/reports/a%3Bb", "/reports/x;?a=b;c"])
def test_route_opted_in_admits_semicolons(opted_in: PolicySet, path: str) -> None:
    decision = decide(request(path, host="x.example"), opted_in, Facts(CertificateFacts.missing()))
    assert decision.allowed and decision.route == "reports"


@pytest.mark.parametrize("path", ["/reports/..;/admin/users", "/reports/.;x", "/reports/..%3b"])
def test_opt_in_never_admits_dot_segments(opted_in: PolicySet, path: str) -> None:
    ctx = context_from_check_request(check_request("x.example", path))
    decision = decide(ctx, opted_in, Facts(CertificateFacts.missing()))
    assert (decision.reason, decision.status) == (Reason.REQUEST_MALFORMED, 400)


def test_semicolon_in_the_query_is_fine(policy: PolicySet) -> None:
    ctx = request("/public/x?a=1;b=2", host="x.example")
    assert decide(ctx, policy, Facts(CertificateFacts.missing())).allowed


def test_opt_in_is_refused_in_an_organisation_override(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "routes:\n  - name: x\n    identities: any\n"
        "    organisations: {acme: {allow_path_parameters: true}}\n"
    )
    # Whether `;` is safe depends on the upstream's parser, not on who is asking.
    with pytest.raises(ConfigError, match=r"organisations\.acme\.allow_path_parameters: unknown"):
        load_policies(tmp_path / "p.yaml")


async def test_route_named_by_envoy_gets_the_same_semicolon_check(
    pki: PkiSet, tmp_path: Path
) -> None:
    (tmp_path / "p.yaml").write_text(POLICY)
    engine, _ = engine_for(pki.trust_bundle, tmp_path)
    ctx = request("/anything;jsessionid=1", host="x.example")
    named = dataclasses.replace(ctx, context_extensions={"admitd_route": "public"})
    decision, _ = await engine.check(named)
    assert (decision.reason, decision.route) == (Reason.REQUEST_MALFORMED, "public")


@pytest.mark.parametrize(
    "authority", ["ADMIN.example.com", "admin.example.com.", "admin.example.com:8443"]
)
async def test_cel_sees_the_host_as_routes_match_it(
    pki: PkiSet, tmp_path: Path, authority: str
) -> None:
    (tmp_path / "p.yaml").write_text(
        "routes:\n  - name: r\n    identities: any\n"
        "    conditions: ['!request.host.startsWith(\"admin.\")']\n"
    )
    engine, _ = engine_for(pki.trust_bundle, tmp_path)
    decision, _ = await engine.check(request("/x", host=authority, cert=url_pem(pki.alice)))
    assert decision.reason is Reason.CONDITION_FAILED


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/public/#", id="empty-fragment"),
        pytest.param("/public/a#/../../admin/users", id="fragment-with-dot-segments"),
        pytest.param("/public/a?q=1#x", id="after-the-query"),
        pytest.param("/healthz#+:?", id="found-by-the-grpc-fuzz"),
    ],
)
def test_a_path_with_a_fragment_is_malformed(policy: PolicySet, path: str) -> None:
    """Found by the 1,000,000-Check gRPC fuzz (`make fuzz-long`): `/healthz#...` met the
    public `/healthz` route, the fragment cut off. A stock Envoy never sends a fragment
    (it rejects or strips one); one that keeps it lets routes and upstreams read different
    paths, so admitd refuses it on every route, a public one too."""
    ctx = context_from_check_request(check_request("x.example", path))
    decision = decide(ctx, policy, Facts(CertificateFacts.missing()))
    assert (decision.reason, decision.status) == (Reason.REQUEST_MALFORMED, 400)
    assert "fragment" in decision.message
