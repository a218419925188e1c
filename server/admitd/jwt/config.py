"""The `jwt:` config section: the issuers whose bearer tokens admitd accepts, and their claims."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from admitd.fields import Fields

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "SECTION_KEYS",
    "IssuerConfig",
    "JwtConfig",
    "claim_mapping_from_fields",
    "idp_url",
    "jwt_config_from_fields",
]

SECTION_KEYS = {"issuers", "cache_size", "refresh_interval_seconds", "fetch_timeout_seconds"}
ISSUER_KEYS = {
    "issuer",
    "jwks_uri",
    "audiences",
    "algorithms",
    "leeway_seconds",
    "user_claim",
    "organisation_claim",
    "default_organisation",
    "roles_claim",
    "role_map",
    "mfa_amr",
    "mfa_acr",
    "acr_values",
    "assume_mfa_enrolled",
    "step_up_status",
}
# Asymmetric only: admitd holds an issuer's public keys, never a shared secret, so an HMAC
# algorithm could only be "verified" with a public key as the secret (the classic confusion).
_ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
                       "ES512", "EdDSA")  # fmt: skip
# RFC 8176 values that mean a second factor; `sms` is weak (SIM swap), so off unless listed.
DEFAULT_MFA_AMR = ("mfa", "otp", "hwk", "swk", "fido")


def _no_roles() -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class IssuerConfig:
    """One trusted issuer. `jwks_uri` empty: discovered from the issuer's OpenID metadata.

    `roles_claim` is a dotted path (`groups`, `realm_access.roles`); `role_map` maps an IdP
    role to admitd roles (unmapped IdP roles are kept as they are when the map is empty,
    dropped otherwise). `assume_mfa_enrolled`: the IdP enforces enrolment, so a privileged
    token without MFA gets a step-up challenge (428) rather than 403 mfa_enrollment_required.
    """

    issuer: str
    audiences: tuple[str, ...]
    jwks_uri: str = ""
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    leeway_seconds: int = 60
    user_claim: str = "sub"
    organisation_claim: str = ""
    default_organisation: str = ""
    roles_claim: str = "groups"
    role_map: Mapping[str, tuple[str, ...]] = field(default_factory=_no_roles)
    mfa_amr: frozenset[str] = frozenset(DEFAULT_MFA_AMR)
    mfa_acr: frozenset[str] = frozenset()
    acr_values: str = ""  # named in the RFC 9470 step-up challenge
    assume_mfa_enrolled: bool = True
    step_up_status: int = 428


@dataclass(frozen=True, slots=True)
class JwtConfig:
    issuers: tuple[IssuerConfig, ...]
    cache_size: int = 10_000  # verified tokens kept (by SHA-256) until they expire
    refresh_interval_seconds: float = 30.0  # at most one JWKS fetch per issuer this often
    fetch_timeout_seconds: float = 1.0  # the longest a Check waits for a JWKS fetch


_DEFAULT_ISSUER = IssuerConfig(issuer="", audiences=())
_DEFAULTS = JwtConfig(issuers=())


def jwt_config_from_fields(fields: Fields) -> JwtConfig:
    """Read `jwt:`; ConfigError naming file, line, key and fix on any problem."""
    issuers = tuple(
        _issuer(Fields(fields.doc, path, raw, ISSUER_KEYS))
        for path, raw in fields.mapping_list("issuers")
    )
    if not issuers:
        raise fields.error("issuers", "at least one issuer is required", "or remove `jwt:`")
    names = [i.issuer for i in issuers]
    if len(set(names)) != len(names):
        raise fields.error("issuers", "an issuer is listed twice", "merge the two entries")
    return JwtConfig(
        issuers=issuers,
        cache_size=fields.integer("cache_size", _DEFAULTS.cache_size, minimum=1),
        refresh_interval_seconds=fields.number(
            "refresh_interval_seconds", _DEFAULTS.refresh_interval_seconds, minimum=1.0
        ),
        fetch_timeout_seconds=fields.number(
            "fetch_timeout_seconds", _DEFAULTS.fetch_timeout_seconds, minimum=0.05
        ),
    )


def _issuer(fields: Fields) -> IssuerConfig:
    audiences = fields.texts("audiences")
    if not audiences:
        raise fields.error(
            "audiences", "required", "the `aud` values this API accepts, e.g. [https://api.example]"
        )
    mapping = claim_mapping_from_fields(fields, audiences=tuple(audiences))
    return replace(
        mapping,
        jwks_uri=idp_url(fields, "jwks_uri") if fields.has("jwks_uri") else "",
        acr_values=_acr_values(fields),
        step_up_status=_step_up_status(fields),
    )


def claim_mapping_from_fields(fields: Fields, *, audiences: tuple[str, ...]) -> IssuerConfig:
    """An issuer, its algorithms and its claim mapping (user, organisation, roles, MFA):
    what `jwt:` issuers and `oidc:` share."""
    d = _DEFAULT_ISSUER
    return IssuerConfig(
        issuer=idp_url(fields, "issuer"),
        audiences=audiences,
        algorithms=_algorithms(fields),
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


def idp_url(fields: Fields, key: str) -> str:
    value = fields.text(key)
    parts = urlsplit(value)
    # Plain http only for loopback: a JWKS fetched over the network unauthenticated is a
    # key anyone on the path can replace.
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise fields.error(key, f"expected an https URL, got {value!r}", "e.g. https://idp.example")
    return value


def _algorithms(fields: Fields) -> tuple[str, ...]:
    algorithms = fields.texts("algorithms") or list(_DEFAULT_ISSUER.algorithms)
    for alg in algorithms:
        if alg not in _ALLOWED_ALGORITHMS:
            raise fields.error(
                "algorithms",
                f"{alg!r} is not accepted with a JWKS (never `none`, never an HMAC algorithm)",
                f"one or more of: {', '.join(_ALLOWED_ALGORITHMS)}",
            )
    return tuple(algorithms)


def _role_map(fields: Fields) -> Mapping[str, tuple[str, ...]]:
    raw = fields.raw.get("role_map") or {}
    table = fields.sub("role_map", set(raw) if isinstance(raw, dict) else set())
    return MappingProxyType({name: tuple(table.texts(name)) for name in table.raw})


def _step_up_status(fields: Fields) -> int:
    status = fields.integer("step_up_status", _DEFAULT_ISSUER.step_up_status, maximum=599)
    if status not in (428, 401):
        raise fields.error(
            "step_up_status", f"expected 428 or 401, got {status}",
            "428 (the security policy) or 401 (strict RFC 9470 clients)",
        )  # fmt: skip
    return status


def _acr_values(fields: Fields) -> str:
    value = fields.optional_text("acr_values") or ""
    if '"' in value or "\\" in value:
        raise fields.error("acr_values", "must not contain quotes", "space-separated ACR values")
    return value
