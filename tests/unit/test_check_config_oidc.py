"""`admitd check-config` on the `oidc:` section: every mistake is named with file, line, key
and fix and exits non-zero; a good section passes; the IdP is never contacted."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pki_fixtures import PkiSet
from tests.unit.test_check_config import check, write

ORIGIN = "https://admitd.test"


@pytest.fixture
def idp_port() -> Iterator[socket.socket]:
    """A listening loopback socket standing in for the IdP: any connection would queue here."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        yield listener


def files(directory: Path) -> None:
    (directory / "web.key").write_bytes(b"k" * 32)
    (directory / "web.key").chmod(0o600)
    (directory / "client.secret").write_text("the-client-secret\n")
    (directory / "client.secret").chmod(0o600)


def web() -> dict[str, object]:
    return {"rp_id": "admitd.test", "signing_key_file": "web.key", "origins": [ORIGIN]}


def oidc(issuer: str, **changes: object) -> dict[str, object]:
    section: dict[str, object] = {
        "issuer": issuer,
        "client_id": "admitd",
        "client_secret_file": "client.secret",
        "redirect_uri": f"{ORIGIN}/.admitd/oidc/callback",
        "scopes": ["openid", "profile"],
    }
    section.update(changes)
    return {key: value for key, value in section.items() if value is not None}


def line_of(path: Path, text: str) -> int:
    """The 1-based line of the first line of `path` that starts with `text` (indent included)."""
    lines = path.read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if line.startswith(text))


def test_a_good_oidc_section_passes_without_asking_the_idp(
    pki: PkiSet, tmp_path: Path, capsys: pytest.CaptureFixture[str], idp_port: socket.socket
) -> None:
    files(tmp_path)
    issuer = f"http://127.0.0.1:{idp_port.getsockname()[1]}"
    path = write(tmp_path, pki, web=web(), oidc=oidc(issuer))
    code, out, err = check(path, capsys)
    assert (code, err) == (0, "") and ": ok (" in out
    with pytest.raises(BlockingIOError):
        idp_port.accept()  # nobody connected: check-config works offline


def test_jwt_issuers_are_not_contacted_either(
    pki: PkiSet, tmp_path: Path, capsys: pytest.CaptureFixture[str], idp_port: socket.socket
) -> None:
    issuer = f"http://127.0.0.1:{idp_port.getsockname()[1]}"
    jwt = {"issuers": [{"issuer": issuer, "audiences": ["https://api.test"]}]}
    code, _, err = check(write(tmp_path, pki, jwt=jwt), capsys)
    assert (code, err) == (0, "")
    with pytest.raises(BlockingIOError):
        idp_port.accept()


# (changes to oidc:, the key reported, the line it is reported at, a piece of the fix)
CASES = {
    "missing-client-id": ({"client_id": None}, "oidc.client_id", "oidc:", "set it"),
    "foreign-redirect": (
        {"redirect_uri": "https://evil.test/.admitd/oidc/callback"},
        "oidc.redirect_uri",
        "  redirect_uri:",
        f"e.g. {ORIGIN}/.admitd/oidc/callback",
    ),
    "no-openid-scope": (
        {"scopes": ["profile", "email"]},
        "oidc.scopes",
        "  scopes:",
        "an OpenID Connect request needs it",
    ),
    "plain-http-issuer": (
        {"issuer": "http://idp.test/realms/acme"},
        "oidc.issuer",
        "  issuer:",
        "https://",
    ),
    "not-a-url-issuer": ({"issuer": "idp.test"}, "oidc.issuer", "  issuer:", "https://"),
    "unknown-key": ({"colour": "blue"}, "oidc.colour", "  colour:", "allowed keys here"),
    "missing-secret-file": (
        {"client_secret_file": "nope.secret"},
        "oidc.client_secret_file",
        "  client_secret_file:",
        "chmod 600",
    ),
}


@pytest.mark.parametrize(("changes", "key", "at", "fix"), CASES.values(), ids=CASES.keys())
def test_a_bad_oidc_section_names_file_line_key_and_fix(
    pki: PkiSet,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    changes: dict[str, object],
    key: str,
    at: str,
    fix: str,
) -> None:
    files(tmp_path)
    section = oidc("https://idp.test/realms/acme") | changes
    path = write(tmp_path, pki, web=web(), oidc={k: v for k, v in section.items() if v is not None})
    code, out, err = check(path, capsys)
    assert (code, out) == (2, "")
    assert f"{path}:{line_of(path, at)}: {key}: " in err and fix in err


def test_a_client_secret_readable_by_others_is_refused(
    pki: PkiSet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files(tmp_path)
    (tmp_path / "client.secret").chmod(0o640)
    path = write(tmp_path, pki, web=web(), oidc=oidc("https://idp.test"))
    code, _, err = check(path, capsys)
    assert code == 2
    line = line_of(path, "  client_secret_file:")
    assert f"{path}:{line}: oidc.client_secret_file: " in err
    assert "readable by group or others" in err and "chmod 600" in err


def test_oidc_without_web_is_refused(
    pki: PkiSet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files(tmp_path)
    path = write(tmp_path, pki, oidc=oidc("https://idp.test"))
    code, _, err = check(path, capsys)
    assert code == 2
    assert f"{path}:{line_of(path, '  issuer:')}: oidc.issuer: " in err
    assert "configure `web:` as well" in err
