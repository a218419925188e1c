"""`admitd check-config`: the admin TLS key pair, the web signing key and `risk.approvers`."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from admitd.cli import main
from admitd.pki import Issued, issue_leaf
from tests.conftest import POLICY
from tests.pki_fixtures import PkiSet

ALICE = "spiffe://test.example/user/alice"
BOB = "spiffe://test.example/user/bob"


def server_files(pki: PkiSet, directory: Path, issued: Issued | None = None) -> tuple[Path, Path]:
    issued = issued or pki.server
    cert, key = directory / "admin.pem", directory / "admin.key"
    cert.write_bytes(issued.cert_pem + pki.root.cert_pem)
    key.write_bytes(issued.key_pem)
    return cert, key


def write(directory: Path, pki: PkiSet, **sections: object) -> Path:
    (directory / "policies").mkdir(exist_ok=True)
    (directory / "policies" / "routes.yaml").write_text(POLICY)
    config = {
        "policies": "policies",
        "dev_mode": True,
        "tls": {"trust_bundle": str(pki.trust_bundle)},
        **sections,
    }
    path = directory / "admitd.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def admin_section(cert: Path, key: Path) -> dict[str, object]:
    return {"server_cert": cert.name, "server_key": key.name, "principals": [ALICE, BOB]}


def check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["check-config", str(path)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_good_admin_key_pair_passes(
    pki: PkiSet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = server_files(pki, tmp_path)
    path = write(tmp_path, pki, admin=admin_section(cert, key), risk={"approvers": [BOB, ALICE]})
    code, out, err = check(path, capsys)
    assert (code, err) == (0, "")
    assert ": ok (" in out


def test_an_admin_key_that_is_not_the_certificates_is_refused(
    pki: PkiSet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = server_files(pki, tmp_path)
    key.write_bytes(pki.bob.key_pem)  # a valid key, of another certificate
    code, _, err = check(write(tmp_path, pki, admin=admin_section(cert, key)), capsys)
    assert code == 2
    assert "admin.server_key" in err and str(key) in err and "admitd.yaml" in err
    assert "is not the private key of" in err and "key issued with it" in err  # the fix


@pytest.mark.parametrize("broken", ["server_cert", "server_key"])
def test_unparseable_admin_tls_files_are_refused(
    pki: PkiSet, tmp_path: Path, capsys: pytest.CaptureFixture[str], broken: str
) -> None:
    cert, key = server_files(pki, tmp_path)
    (cert if broken == "server_cert" else key).write_text("-----BEGIN garbage\n")
    code, _, err = check(write(tmp_path, pki, admin=admin_section(cert, key)), capsys)
    assert code == 2 and f"admin.server_{broken.split('_')[1]}" in err


def test_an_expired_admin_certificate_is_refused(
    pki: PkiSet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    old = issue_leaf(
        pki.root,
        "localhost",
        dns_names=("localhost",),
        client=False,
        server=True,
        not_before=now - timedelta(days=60),
        not_after=now - timedelta(days=1),
    )
    cert, key = server_files(pki, tmp_path, old)
    code, _, err = check(write(tmp_path, pki, admin=admin_section(cert, key)), capsys)
    assert code == 2
    assert "admin.server_cert" in err and "expired" in err and str(cert) in err


def test_an_admin_certificate_about_to_expire_is_a_warning(
    pki: PkiSet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    soon = issue_leaf(
        pki.root,
        "localhost",
        dns_names=("localhost",),
        client=False,
        server=True,
        not_after=datetime.now(UTC) + timedelta(days=5),
    )
    cert, key = server_files(pki, tmp_path, soon)
    path = write(tmp_path, pki, admin=admin_section(cert, key), risk={"approvers": [BOB, ALICE]})
    code, _, err = check(path, capsys)
    assert code == 0
    assert "warning" in err and "admin.server_cert" in err and "expires" in err


@pytest.mark.parametrize(
    ("mode", "content", "message"),
    [
        (0o644, b"k" * 32, "readable by group or others"),
        (0o600, b"k" * 16, "at least 32"),
        (None, b"", "cannot read"),
    ],
    ids=["world-readable", "short", "missing"],
)
def test_the_web_signing_key_is_checked(
    pki: PkiSet,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    mode: int | None,
    content: bytes,
    message: str,
) -> None:
    key = tmp_path / "web.key"
    if mode is not None:
        key.write_bytes(content)
        os.chmod(key, mode)
    web = {"rp_id": "api.test", "signing_key_file": key.name}
    code, _, err = check(write(tmp_path, pki, web=web), capsys)
    assert code == 2
    assert "web.signing_key_file" in err and message in err and str(key) in err


def test_without_risk_approvers_check_config_says_the_risk_api_refuses_everyone(
    pki: PkiSet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = server_files(pki, tmp_path)
    code, _, err = check(write(tmp_path, pki, admin=admin_section(cert, key)), capsys)
    assert code == 0
    assert "risk.approvers" in err and "refuses every caller" in err


def test_one_risk_approver_cannot_give_dual_control(
    pki: PkiSet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = server_files(pki, tmp_path)
    path = write(tmp_path, pki, admin=admin_section(cert, key), risk={"approvers": [BOB]})
    code, _, err = check(path, capsys)
    assert code == 0 and "risk.approvers" in err and "two" in err


def test_risk_approvers_are_normalised_and_validated(
    pki: PkiSet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from admitd.config import load_config

    path = write(tmp_path, pki, risk={"approvers": ["CN=ops, O=Example", BOB]})
    assert load_config(path, environ={}).risk.approvers == {"CN=ops,O=Example", BOB}
    path = write(tmp_path, pki, risk={"approvers": ["CN=ops,O"]})
    code, _, err = check(path, capsys)
    assert code == 2 and "risk.approvers" in err and "RFC 4514" in err
