"""The `oidc:` config section: the IdP browsers sign in at, admitd's client, and the claims."""

from __future__ import annotations

import stat
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit

from admitd.fields import Fields
from admitd.jwt.config import IssuerConfig
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
}
_ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
               "ES512", "EdDSA")  # fmt: skip
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
    )


def _claims(fields: Fields, client_id: str) -> IssuerConfig:
    d = IssuerConfig(issuer="", audiences=())
    return IssuerConfig(
        issuer=_issuer(fields),
        audiences=(client_id,),
        algorithms=_algorithms(fields, d.algorithms),
        leeway_seconds=fields.integer("leeway_seconds", d.leeway_seconds, maximum=600),
        user_claim=fields.text("user_claim", d.user_claim),
        organisation_claim=fields.optional_text("organisation_claim") or "",
        default_organisation=fields.optional_text("default_organisation") or "",
        roles_claim=fields.text("roles_claim", d.roles_claim),
        role_map=_role_map(fields),
        mfa_amr=frozenset(fields.texts("mfa_amr")) if fields.has("mfa_amr") else d.mfa_amr,
        mfa_acr=frozenset(fields.texts("mfa_acr")),
        assume_mfa_enrolled=fields.flag("assume_mfa_enrolled", d.assume_mfa_enrolled),
    )


def _issuer(fields: Fields) -> str:
    value = fields.text("issuer")
    parts = urlsplit(value)
    # Plain http only for loopback: discovery and keys fetched unauthenticated over a network
    # are keys anyone on the path can replace.
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise fields.error(
            "issuer", f"expected an https URL, got {value!r}", "e.g. https://idp.example/realms/x"
        )
    return value


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
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise fields.error(key, f"cannot read {path}: {exc.strerror}", fix) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise fields.error(key, f"{path} is readable by group or others", f"chmod 600 {path}")
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


def _algorithms(fields: Fields, default: tuple[str, ...]) -> tuple[str, ...]:
    algorithms = fields.texts("algorithms") or list(default)
    refused = [alg for alg in algorithms if alg not in _ASYMMETRIC]
    if refused:
        raise fields.error(
            "algorithms",
            f"{refused[0]!r} is not accepted (never `none`, never an HMAC algorithm)",
            f"one or more of: {', '.join(_ASYMMETRIC)}",
        )
    return tuple(algorithms)


def _role_map(fields: Fields) -> MappingProxyType[str, tuple[str, ...]]:
    raw = fields.raw.get("role_map") or {}
    table = fields.sub("role_map", set(raw) if isinstance(raw, dict) else set())
    return MappingProxyType({name: tuple(table.texts(name)) for name in table.raw})
