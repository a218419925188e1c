"""Mesh identity: what a trusted Envoy verified counts, from anyone else it means nothing."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest

from admitd.certs.callers import CheckCaller
from admitd.certs.forwarding import ForwardHeader, TrustedProxy
from admitd.certs.mesh import MeshSettings
from admitd.certs.revocation import RevocationError, append_deny_entry, deny_list_from_text
from admitd.certs.spiffe import SpiffeIdError, spiffe_trust_domain
from admitd.certs.verify import identity_from_certificate
from admitd.cli import main as admitd_main
from admitd.core.context import Caller
from admitd.core.identity import CertificateFacts, CertificateProblem
from admitd.pki import issue_leaf
from tests.pki_fixtures import PkiSet, pem, url_pem
from tests.unit.helpers import engine_for, request

ALICE = "spiffe://test.example/user/alice"
SIDECAR = CheckCaller("sidecar", unix_socket=True)
INGRESS = CheckCaller("ingress", principals=frozenset({"spiffe://test.example/gw/ingress"}))
LOOPBACK = CheckCaller("loopback", networks=(ipaddress.ip_network("127.0.0.1/32"),))
MESH = MeshSettings(frozenset({"test.example"}), (SIDECAR, INGRESS, LOOPBACK))
UNIX = Caller("unix")


def mesh_facts(
    pki: PkiSet,
    policy_dir: Path,
    *,
    principal: str = ALICE,
    caller: Caller = UNIX,
    cert: str = "",
    headers: dict[str, str] | None = None,
    mesh: MeshSettings = MESH,
    deny_list: Path | None = None,
) -> CertificateFacts:
    engine, _ = engine_for(pki.trust_bundle, policy_dir, mesh=mesh, deny_list=deny_list)
    ctx = request(principal=principal, caller=caller, cert=cert, headers=headers)
    return engine.certificates.facts_for(ctx, datetime.now(UTC))


@pytest.mark.parametrize(
    "spiffe_id",
    ["spiffe://cluster.local/ns/default/sa/web", "spiffe://example.org", "spiffe://a_b.c-d/x.y"],
)
def test_well_formed_spiffe_ids(spiffe_id: str) -> None:
    assert spiffe_trust_domain(spiffe_id) == spiffe_id.split("/")[2]


@pytest.mark.parametrize(
    "spiffe_id",
    [
        "https://cluster.local/ns/default",
        "spiffe://Cluster.local/ns",  # upper case trust domain
        "spiffe://cluster.local:8443/ns",  # a port
        "spiffe://user@cluster.local/ns",
        "spiffe:///ns/default",
        "spiffe://cluster.local/ns//sa",
        "spiffe://cluster.local/ns/../admin",
        "spiffe://cluster.local/ns/default/",
        "spiffe://cluster.local/ns%2Fadmin",
        "spiffe://cluster.local/ns?x=1",
        "spiffe://cluster.local/" + "a" * 2048,
    ],
)
def test_malformed_spiffe_ids_are_refused(spiffe_id: str) -> None:
    with pytest.raises(SpiffeIdError):
        spiffe_trust_domain(spiffe_id)


def test_a_trusted_caller_vouches_for_the_principal(pki: PkiSet, policy_dir: Path) -> None:
    facts = mesh_facts(pki, policy_dir)
    assert facts.problem is None and facts.identity is not None
    assert (facts.identity.principal, facts.source, facts.proxy) == (ALICE, "mesh", "sidecar")
    assert facts.identity.fingerprint_sha256 == ""  # no certificate was at hand


@pytest.mark.parametrize(
    "caller",
    [
        Caller("tcp", "10.0.0.9"),  # plaintext from an address nobody named
        Caller("tls", "10.0.0.9", frozenset({"spiffe://test.example/gw/other"})),
        Caller("tcp", "not-an-ip"),
        Caller(),  # gRPC said nothing about the peer
    ],
)
def test_an_untrusted_caller_vouches_for_nothing(
    pki: PkiSet, policy_dir: Path, caller: Caller
) -> None:
    facts = mesh_facts(pki, policy_dir, caller=caller)
    assert facts.identity is None and facts.problem is CertificateProblem.MISSING
    assert "does not name" in facts.detail


def test_a_unix_socket_caller_needs_a_unix_socket_entry(pki: PkiSet, policy_dir: Path) -> None:
    mesh = MeshSettings(frozenset({"test.example"}), (LOOPBACK,))
    assert mesh_facts(pki, policy_dir, mesh=mesh).identity is None


@pytest.mark.parametrize(
    ("caller", "name"),
    [
        (Caller("tls", "10.0.0.9", frozenset({"spiffe://test.example/gw/ingress"})), "ingress"),
        (Caller("tcp", "127.0.0.1"), "loopback"),
    ],
)
def test_callers_by_certificate_and_by_address(
    pki: PkiSet, policy_dir: Path, caller: Caller, name: str
) -> None:
    facts = mesh_facts(pki, policy_dir, caller=caller)
    assert facts.identity is not None and facts.proxy == name


def test_a_principal_only_counts_over_tls(pki: PkiSet, policy_dir: Path) -> None:
    # A plaintext caller has no verified certificate, whatever gRPC's context says.
    caller = Caller("tcp", "10.0.0.9", frozenset({"spiffe://test.example/gw/ingress"}))
    assert mesh_facts(pki, policy_dir, caller=caller).identity is None


def test_an_unnamed_caller_cannot_replay_a_public_certificate(
    pki: PkiSet, policy_dir: Path
) -> None:
    # Anyone who reaches a Check listener can put a victim's public SVID in
    # source.certificate; with mesh: set, only named callers' claims count.
    facts = mesh_facts(pki, policy_dir, caller=Caller("tcp", "10.0.0.9"), cert=url_pem(pki.bob))
    assert facts.identity is None and facts.problem is CertificateProblem.MISSING
    edge_proxy = TrustedProxy(
        "lb", ForwardHeader.XFCC, networks=(ipaddress.ip_network("10.9.0.0/16"),)
    )
    engine, _ = engine_for(pki.trust_bundle, policy_dir, mesh=MESH, proxies=[edge_proxy])
    spoofed = request(
        caller=Caller("tcp", "127.0.0.1"),
        source="10.9.0.1",
        headers={"x-forwarded-client-cert": f'Cert="{url_pem(pki.alice)}"'},
    )
    assert engine.certificates.facts_for(spoofed, datetime.now(UTC)).identity is None


def test_unnamed_callers_edge_keeps_the_edge_path(pki: PkiSet, policy_dir: Path) -> None:
    edge = MeshSettings(MESH.trust_domains, MESH.callers, unnamed_callers="edge")
    facts = mesh_facts(
        pki, policy_dir, caller=Caller("tcp", "10.0.0.9"), cert=url_pem(pki.bob), mesh=edge
    )
    assert facts.identity is not None and facts.source == "peer"
    assert facts.identity.principal == "spiffe://test.example/user/bob"


@pytest.mark.parametrize(
    ("principal", "problem"),
    [
        ("", CertificateProblem.MISSING),
        ("CN=alice,O=admitd dev", CertificateProblem.MALFORMED),
        ("spiffe://other.example/user/alice", CertificateProblem.UNTRUSTED),
        ("spiffe://test.example/user/../admin", CertificateProblem.MALFORMED),
    ],
)
def test_the_vouched_identity_is_still_checked(
    pki: PkiSet, policy_dir: Path, principal: str, problem: CertificateProblem
) -> None:
    facts = mesh_facts(pki, policy_dir, principal=principal)
    assert facts.identity is None and facts.problem is problem


def test_a_denied_spiffe_id_is_revoked_and_applies_without_restart(
    pki: PkiSet, policy_dir: Path, tmp_path: Path
) -> None:
    deny = tmp_path / "deny.txt"
    deny.write_text("")
    engine, revocation = engine_for(pki.trust_bundle, policy_dir, mesh=MESH, deny_list=deny)
    ctx = request(principal=ALICE, caller=UNIX)
    now = datetime.now(UTC)
    assert engine.certificates.facts_for(ctx, now).identity is not None  # and now cached
    append_deny_entry(deny, spiffe_id=ALICE, comment="compromised workload")
    assert revocation.reload_if_changed()
    engine.certificates.invalidate()
    assert engine.certificates.facts_for(ctx, now).problem is CertificateProblem.REVOKED
    # The same entry refuses an edge certificate that carries that SPIFFE ID.
    edge_engine, _ = engine_for(pki.trust_bundle, policy_dir, deny_list=deny)
    edge = request(cert=url_pem(pki.alice))
    assert edge_engine.certificates.facts_for(edge, now).problem is CertificateProblem.REVOKED


def test_spiffe_deny_entries_are_validated_and_case_sensitive() -> None:
    parsed = deny_list_from_text("spiffe:spiffe://td/ns/Web  # why\n", source="deny.txt")
    assert parsed.spiffe_ids == frozenset({"spiffe://td/ns/Web"})
    with pytest.raises(RevocationError, match=r"deny.txt:1: .* not a SPIFFE ID"):
        deny_list_from_text("spiffe:https://td/ns\n", source="deny.txt")


def test_the_peer_certificate_must_name_the_principal(pki: PkiSet, policy_dir: Path) -> None:
    good = mesh_facts(pki, policy_dir, cert=url_pem(pki.alice))
    assert good.identity is not None and len(good.identity.fingerprint_sha256) == 64
    wrong = mesh_facts(pki, policy_dir, cert=url_pem(pki.bob))
    assert wrong.problem is CertificateProblem.UNTRUSTED


def test_an_expired_certificate_is_refused_even_when_the_mesh_vouches(
    pki: PkiSet, policy_dir: Path
) -> None:
    principal = "spiffe://test.example/user/old"
    facts = mesh_facts(pki, policy_dir, principal=principal, cert=url_pem(pki.expired))
    assert facts.problem is CertificateProblem.EXPIRED


def test_a_certificate_with_two_uri_sans_is_not_an_svid(pki: PkiSet, policy_dir: Path) -> None:
    two = issue_leaf(pki.client_ca, "two", uris=(ALICE, "spiffe://test.example/user/admin"))
    assert mesh_facts(pki, policy_dir, cert=url_pem(two)).problem is CertificateProblem.UNTRUSTED


def test_a_certificate_denied_by_serial_is_revoked(
    pki: PkiSet, policy_dir: Path, tmp_path: Path
) -> None:
    deny = tmp_path / "deny.txt"
    deny.write_text(f"serial:{pki.alice.cert.serial_number:x}\n")
    facts = mesh_facts(pki, policy_dir, cert=url_pem(pki.alice), deny_list=deny)
    assert facts.problem is CertificateProblem.REVOKED


def test_the_xfcc_cert_of_the_last_element_is_checked(pki: PkiSet, policy_dir: Path) -> None:
    xfcc = f'Hash=00;Cert="{url_pem(pki.alice)}";URI={ALICE}'
    facts = mesh_facts(pki, policy_dir, headers={"x-forwarded-client-cert": xfcc})
    assert facts.identity is not None and len(facts.identity.fingerprint_sha256) == 64
    # An earlier element (APPEND_FORWARD: from further away) is not the caller's view.
    spoofed = f'Cert="{url_pem(pki.bob)}";URI=spiffe://test.example/user/bob,{xfcc}'
    facts = mesh_facts(pki, policy_dir, headers={"x-forwarded-client-cert": spoofed})
    assert facts.identity is not None and facts.identity.principal == ALICE


@pytest.mark.parametrize(
    "xfcc",
    [
        "URI=spiffe://test.example/user/bob",  # names someone else than source.principal
        'Cert="%%%";URI=' + ALICE,  # not a certificate
        'Cert=unbalanced"quote',
    ],
)
def test_an_xfcc_that_disagrees_or_is_malformed_is_refused(
    pki: PkiSet, policy_dir: Path, xfcc: str
) -> None:
    facts = mesh_facts(pki, policy_dir, headers={"x-forwarded-client-cert": xfcc})
    assert facts.identity is None
    assert facts.problem is CertificateProblem.MALFORMED


def test_require_certificate(pki: PkiSet, policy_dir: Path) -> None:
    strict = MeshSettings(MESH.trust_domains, MESH.callers, require_certificate=True)
    assert mesh_facts(pki, policy_dir, mesh=strict).problem is CertificateProblem.MISSING
    with_cert = mesh_facts(pki, policy_dir, mesh=strict, cert=url_pem(pki.alice))
    assert with_cert.identity is not None


def test_a_garbled_peer_certificate_is_malformed(pki: PkiSet, policy_dir: Path) -> None:
    garbled = quote(pem(pki.alice).replace("MI", "AA", 3), safe="")
    assert mesh_facts(pki, policy_dir, cert=garbled).problem is CertificateProblem.MALFORMED


def test_admitd_revoke_spiffe_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deny = tmp_path / "deny.txt"
    argv = ["revoke", "--deny-list", str(deny), "--spiffe-id", ALICE, "--comment", "leaked key"]
    assert admitd_main(argv) == 0
    assert deny_list_from_text(deny.read_text(), source="deny").spiffe_ids == {ALICE}
    # A bad entry is refused with a reason, no traceback, and nothing is written.
    before = deny.read_text()
    bad = ["revoke", "--deny-list", str(deny), "--spiffe-id", "spiffe://Upper/x"]
    assert admitd_main(bad) == 2
    assert "nothing added" in capsys.readouterr().err and deny.read_text() == before


GATEWAY = TrustedProxy("gateway", ForwardHeader.XFCC, caller=SIDECAR)


def proxied_facts(pki: PkiSet, policy_dir: Path, xfcc: str, caller: Caller) -> CertificateFacts:
    engine, _ = engine_for(pki.trust_bundle, policy_dir, proxies=[GATEWAY], crl_files=[pki.crl])
    ctx = request(headers={"x-forwarded-client-cert": xfcc}, caller=caller)
    return engine.certificates.facts_for(ctx, datetime.now(UTC))


def test_a_gateway_that_asks_may_forward_the_client_certificate(
    pki: PkiSet, policy_dir: Path
) -> None:
    # Envoy Gateway / an Istio gateway verified the user's certificate and set XFCC; admitd
    # believes the header because of who asked, and verifies the certificate fully itself.
    xfcc = f'Hash=00;Cert="{url_pem(pki.bob)}";URI=spiffe://test.example/user/bob'
    facts = proxied_facts(pki, policy_dir, xfcc, UNIX)
    assert facts.identity is not None and facts.identity.principal.endswith("/bob")
    assert (facts.source, facts.proxy) == ("xfcc", "gateway")
    untrusted = f'Cert="{url_pem(pki.untrusted)}"'
    assert proxied_facts(pki, policy_dir, untrusted, UNIX).problem is CertificateProblem.UNTRUSTED
    revoked = f'Cert="{url_pem(pki.revoked)}"'
    assert proxied_facts(pki, policy_dir, revoked, UNIX).problem is CertificateProblem.REVOKED


def test_from_any_other_caller_the_forwarded_certificate_is_ignored(
    pki: PkiSet, policy_dir: Path
) -> None:
    xfcc = f'Cert="{url_pem(pki.bob)}"'
    facts = proxied_facts(pki, policy_dir, xfcc, Caller("tcp", "127.0.0.1"))
    assert facts.identity is None and facts.source == "peer"


def test_principals_and_cidrs_together_both_must_match() -> None:
    both = CheckCaller(
        "gw",
        principals=frozenset({"spiffe://test.example/gw"}),
        networks=(ipaddress.ip_network("10.0.0.0/8"),),
    )
    assert not both.recognises(Caller("tcp", "10.1.2.3"))  # no certificate
    outside = Caller("tls", "192.0.2.1", frozenset({"spiffe://test.example/gw"}))
    assert not both.recognises(outside)
    assert both.recognises(Caller("tls", "10.1.2.3", frozenset({"spiffe://test.example/gw"})))


def test_a_gateway_by_call_with_the_peer_certificate_reads_its_own_element(
    pki: PkiSet, policy_dir: Path
) -> None:
    """include_peer_certificate at a gateway named by its call: the peer certificate is the
    user's, so the element whose Hash is that certificate is the gateway's own."""
    bob_fp = identity_from_certificate(pki.bob.cert).fingerprint_sha256
    engine, _ = engine_for(pki.trust_bundle, policy_dir, proxies=[GATEWAY])
    now = datetime.now(UTC)
    # APPEND_FORWARD: the client prepended alice's public certificate.
    appended = f'Cert="{url_pem(pki.alice)}",Hash={bob_fp};Cert="{url_pem(pki.bob)}"'
    sanitized = f'Hash={bob_fp};Cert="{url_pem(pki.bob)}"'  # SANITIZE_SET
    for xfcc in (appended, sanitized):
        ctx = request(headers={"x-forwarded-client-cert": xfcc}, caller=UNIX, cert=url_pem(pki.bob))
        facts = engine.certificates.facts_for(ctx, now)
        assert facts.identity is not None, facts.detail
        assert facts.identity.principal == "spiffe://test.example/user/bob"


@pytest.mark.parametrize(
    "principal", ["spiffe://test.example", "spiffe://test.example.", "spiffe://../x"]
)
def test_a_trust_domain_alone_or_with_empty_labels_is_no_workload(
    pki: PkiSet, policy_dir: Path, principal: str
) -> None:
    facts = mesh_facts(pki, policy_dir, principal=principal)
    assert facts.identity is None and facts.problem is CertificateProblem.MALFORMED


def test_a_deny_entry_for_a_whole_trust_domain_is_refused() -> None:
    with pytest.raises(RevocationError, match="names a trust domain, not a workload"):
        deny_list_from_text("spiffe:spiffe://td\n", source="deny.txt")
