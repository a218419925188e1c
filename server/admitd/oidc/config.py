"""The `oidc:` config section: the IdP browsers sign in at, admitd's client, and the claims."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from admitd.core.route import StepUpAt
from admitd.fields import Fields
from admitd.jwt.config import IssuerConfig, claim_mapping_from_fields
from admitd.web.config import WebConfig

__all__ = ["CALLBACK_PATH", "SECTION_KEYS", "OidcConfig", "oidc_config_from_fields"]

CALLBACK_PATH = "/.admitd/oidc/callback"
SECTION_KEYS = {
    "issuer",
    "client_id",
    "client_secret_file",
    "redirect_uri",
    "post_logout_redirect_uri",
    "scopes",
    "leeway_seconds",
    "algorithms",
    "user_claim",
    "organisation_claim",
    "default_organisation",
    "roles_claim",
    "role_map",
    "mfa_amr",
    "mfa_acr",
    "assume_mfa_enrolled",
    "fetch_timeout_seconds",
    "step_up",
    "step_up_acr_values",
    "step_up_prompt_login",
}
_MAX_SECRET_BYTES = 4096


@dataclass(frozen=True, slots=True)
class OidcConfig:
    """`claims` is the same claim mapping the `jwt:` issuers use, with `aud` = `client_id`
    (an ID token is for admitd itself), so both sections map claims in one place."""

    claims: IssuerConfig
    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str
    post_logout_redirect_uri: str
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    fetch_timeout_seconds: float = 5.0
    # Where stale MFA is refreshed for routes that do not say (`step_up:` on a route).
    # The IdP by default: with `oidc:`, users' second factors live there.
    step_up: StepUpAt = StepUpAt.IDP
    step_up_acr_values: str = ""  # sent with a step-up authorization request
    step_up_prompt_login: bool = True  # and `prompt=login`, beside `max_age`

    @property
    def issuer(self) -> str:
        return self.claims.issuer


def oidc_config_from_fields(fields: Fields, web: WebConfig | None) -> OidcConfig:
    """Read `oidc:`; ConfigError naming file, line, key and fix on any problem."""
    if web is None:
        raise fields.error(
            "issuer", "browser sign-in needs the web app", "configure `web:` as well"
        )
    origin = web.origins[0]
    client_id = fields.text("client_id")
    return OidcConfig(
        claims=_claims(fields, client_id),
        client_id=client_id,
        client_secret=_secret(fields),
        redirect_uri=_own_url(fields, "redirect_uri", origin + CALLBACK_PATH, web),
        post_logout_redirect_uri=_own_url(fields, "post_logout_redirect_uri", origin + "/", web),
        scopes=_scopes(fields),
        fetch_timeout_seconds=fields.number("fetch_timeout_seconds", 5.0, minimum=0.1),
        step_up=StepUpAt(fields.choice("step_up", StepUpAt.IDP.value, tuple(StepUpAt))),
        step_up_acr_values=" ".join(fields.texts("step_up_acr_values")),
        step_up_prompt_login=fields.flag("step_up_prompt_login", True),
    )


def _claims(fields: Fields, client_id: str) -> IssuerConfig:
    # An ID token is for admitd itself: its audience is the client ID.
    return claim_mapping_from_fields(fields, audiences=(client_id,))


def _own_url(fields: Fields, key: str, default: str, web: WebConfig) -> str:
    """A URL on one of the web app's origins (where the IdP sends the browser back)."""
    value = fields.text(key, default)
    parts = urlsplit(value)
    if f"{parts.scheme}://{parts.netloc}" not in web.origins or not parts.path.startswith("/"):
        raise fields.error(
            key,
            f"{value!r} is not on one of web.origins ({', '.join(web.origins)})",
            f"e.g. {default}",
        )
    return value


def _secret(fields: Fields) -> str:
    key = "client_secret_file"
    path = Path(fields.doc.file).resolve().parent / fields.text(key)
    fix = f"write the client secret to {path} and chmod 600 {path}"
    path, data = fields.private_file(key, fix)
    try:
        secret = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise fields.error(key, f"{path} is not UTF-8 text", fix) from None
    if not secret or len(data) > _MAX_SECRET_BYTES:
        raise fields.error(key, f"{path} is empty or too large", fix)
    return secret


def _scopes(fields: Fields) -> tuple[str, ...]:
    scopes = fields.texts("scopes") or ["openid", "profile", "email"]
    if "openid" not in scopes:
        raise fields.error("scopes", "`openid` is missing", "an OpenID Connect request needs it")
    return tuple(scopes)
