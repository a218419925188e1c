"""The `oidc:` config section: defaults from `web:`, the secret file, and errors with a fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from admitd.errors import ConfigError
from admitd.fields import Fields
from admitd.oidc import SECTION_KEYS, OidcConfig, oidc_config_from_fields
from admitd.web import WebConfig
from admitd.yamlsource import yaml_document_from_text

WEB = WebConfig(rp_id="app.test", origins=("https://app.test",), signing_key=b"k" * 32)
BASE = "  issuer: https://idp.test/realms/acme\n  client_id: admitd\n  client_secret_file: s\n"


def load(tmp_path: Path, body: str, web: WebConfig | None = WEB) -> OidcConfig:
    doc = yaml_document_from_text(f"oidc:\n{body}", str(tmp_path / "admitd.yaml"))
    assert isinstance(doc.data, dict)
    return oidc_config_from_fields(Fields(doc, ("oidc",), doc.data["oidc"], SECTION_KEYS), web)


@pytest.fixture(autouse=True)
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "s"
    path.write_text("the-secret\n")
    path.chmod(0o600)
    return path


def test_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, BASE)
    assert config.issuer == "https://idp.test/realms/acme"
    assert config.client_secret == "the-secret" and "the-secret" not in repr(config)
    assert config.redirect_uri == "https://app.test/.admitd/oidc/callback"
    assert config.post_logout_redirect_uri == "https://app.test/"
    assert config.scopes == ("openid", "profile", "email")
    claims = config.claims
    assert claims.audiences == ("admitd",) and claims.user_claim == "sub"
    assert claims.mfa_amr == {"mfa", "otp", "hwk", "swk", "fido"} and "sms" not in claims.mfa_amr


def test_the_claim_mapping_is_the_jwt_one(tmp_path: Path) -> None:
    body = BASE + (
        "  roles_claim: realm_access.roles\n  role_map: {ops: [admin, auditor]}\n"
        "  organisation_claim: org\n  mfa_amr: [otp, sms]\n  mfa_acr: [gold]\n"
    )
    claims = load(tmp_path, body).claims
    assert claims.roles_claim == "realm_access.roles"
    assert dict(claims.role_map) == {"ops": ("admin", "auditor")}
    assert claims.mfa_amr == {"otp", "sms"} and claims.mfa_acr == {"gold"}


@pytest.mark.parametrize(
    ("body", "key", "fix"),
    [
        ("  client_id: admitd\n  client_secret_file: s\n", "oidc.issuer", "set it"),
        (BASE.replace("https://idp", "http://idp"), "oidc.issuer", "https://"),
        (BASE + "  redirect_uri: https://evil.test/cb\n", "oidc.redirect_uri", "e.g."),
        (BASE + "  scopes: [profile]\n", "oidc.scopes", "needs it"),
        (BASE + "  algorithms: [HS256]\n", "oidc.algorithms", "RS256"),
        (BASE + "  colour: blue\n", "oidc.colour", "allowed keys"),
        (
            BASE.replace("client_secret_file: s", "client_secret_file: nope"),
            "client_secret_file",
            "chmod 600",
        ),
    ],
    ids=[
        "no-issuer",
        "plain-http",
        "foreign-redirect",
        "no-openid",
        "hmac",
        "unknown",
        "missing-secret",
    ],
)
def test_bad_config_names_the_key_and_the_fix(
    tmp_path: Path, body: str, key: str, fix: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, body)
    message = str(caught.value)
    assert key in message and fix in message and "admitd.yaml" in message


def test_a_secret_readable_by_others_is_refused(tmp_path: Path, secret: Path) -> None:
    secret.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by group or others"):
        load(tmp_path, BASE)


def test_oidc_without_web_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="configure `web:`"):
        load(tmp_path, BASE, web=None)
