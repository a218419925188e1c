"""The `jwt:` config section: defaults, and errors that name file, line, key and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from admitd.errors import ConfigError
from admitd.fields import Fields
from admitd.jwt.config import DEFAULT_MFA_AMR, SECTION_KEYS, JwtConfig, jwt_config_from_fields
from admitd.yamlsource import yaml_document_from_text

ISSUER = "  issuers:\n    - issuer: https://idp.example\n      audiences: [https://api.example]\n"


def load(tmp_path: Path, body: str) -> JwtConfig:
    doc = yaml_document_from_text(f"jwt:\n{body}", str(tmp_path / "admitd.yaml"))
    assert isinstance(doc.data, dict)
    return jwt_config_from_fields(Fields(doc, ("jwt",), doc.data["jwt"], SECTION_KEYS))


def test_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, ISSUER)
    issuer = config.issuers[0]
    assert issuer.algorithms == ("RS256", "ES256") and issuer.jwks_uri == ""
    assert issuer.user_claim == "sub" and issuer.roles_claim == "groups"
    assert issuer.mfa_amr == frozenset(DEFAULT_MFA_AMR) and "sms" not in issuer.mfa_amr
    assert issuer.step_up_status == 428 and issuer.leeway_seconds == 60
    assert config.refresh_interval_seconds == 30 and config.fetch_timeout_seconds == 1


def test_explicit_values(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        ISSUER + "      jwks_uri: https://idp.example/keys\n      roles_claim: realm_access.roles\n"
        "      role_map: {platform-admins: [admin], auditors: [auditor, viewer]}\n"
        "      mfa_amr: [otp, sms]\n      mfa_acr: [urn:mfa]\n      acr_values: urn:mfa\n"
        "      step_up_status: 401\n      algorithms: [ES256]\n",
    )
    issuer = config.issuers[0]
    assert issuer.role_map == {"platform-admins": ("admin",), "auditors": ("auditor", "viewer")}
    assert issuer.mfa_amr == {"otp", "sms"} and issuer.mfa_acr == {"urn:mfa"}
    assert (issuer.step_up_status, issuer.algorithms) == (401, ("ES256",))


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        pytest.param("      algorithms: [none]\n", "algorithms", "never `none`", id="alg-none"),
        pytest.param("      algorithms: [HS256]\n", "algorithms", "HMAC", id="hs256"),
        pytest.param("      step_up_status: 403\n", "step_up_status", "428 or 401", id="status"),
        pytest.param("      jwks_uri: http://idp.example/k\n", "jwks_uri", "https", id="http"),
        pytest.param("      scopes: [a]\n", "scopes", "unknown key", id="unknown-key"),
        pytest.param("      acr_values: 'a\"b'\n", "acr_values", "quotes", id="acr-quote"),
    ],
)
def test_errors_name_the_key_line_and_fix(tmp_path: Path, extra: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, ISSUER + extra)
    assert info.value.key == f"jwt.issuers[0].{key}"
    assert info.value.line is not None and words in str(info.value)


def test_an_issuer_needs_audiences(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="required") as info:
        load(tmp_path, "  issuers:\n    - issuer: https://idp.example\n")
    assert info.value.key == "jwt.issuers[0].audiences"


def test_no_issuers_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least one issuer"):
        load(tmp_path, "  issuers: []\n")


def test_loopback_http_is_allowed_for_a_local_idp(tmp_path: Path) -> None:
    body = "  issuers:\n    - issuer: http://127.0.0.1:4000\n      audiences: [x]\n"
    assert load(tmp_path, body).issuers[0].issuer == "http://127.0.0.1:4000"
