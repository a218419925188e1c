"""admitd's configuration: one typed object from YAML plus `ADMITD_*` environment variables.

Environment variables override the file: `ADMITD_LISTEN=0.0.0.0:9001`, and nested
keys with a double underscore, `ADMITD_TLS__MAX_CHAIN_LENGTH=5`. Values are read
as YAML scalars (`true`, `10`, `[a, b]`). `ADMITD_CONFIG` (which file) and the fuzz
suite's `ADMITD_FUZZ_*` are not overrides. Relative paths are relative to the
directory of the config file.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from admitd.admin.config import SECTION_KEYS as ADMIN_KEYS
from admitd.admin.config import AdminConfig, admin_config_from_fields
from admitd.audit.config import SECTION_KEYS as AUDIT_KEYS
from admitd.audit.config import AuditConfig, audit_config_from_fields
from admitd.certs.forwarding import ForwardHeader, TrustedProxy
from admitd.certs.mesh import MeshSettings
from admitd.certs.mesh_config import (
    CALLER_KEYS,
    ListenFacts,
    check_caller,
    mesh_settings_from_fields,
)
from admitd.certs.mesh_config import SECTION_KEYS as MESH_KEYS
from admitd.core.mfa_rules import MfaRules
from admitd.custody.config import SECTION_KEYS as KEYS_KEYS
from admitd.custody.config import KeysConfig, keys_config_from_fields
from admitd.errors import ConfigError
from admitd.fields import Fields
from admitd.httpauthz.config import http_listen_from_fields
from admitd.jwt.config import SECTION_KEYS as JWT_KEYS
from admitd.jwt.config import JwtConfig, jwt_config_from_fields
from admitd.kms.config import SECTION_KEYS as KMS_KEYS
from admitd.kms.config import KmsConfig, kms_config_from_fields
from admitd.mfa.config import SECTION_KEYS as MFA_KEYS
from admitd.mfa.config import MfaConfig, mfa_config_from_fields
from admitd.oidc.config import SECTION_KEYS as OIDC_KEYS
from admitd.oidc.config import OidcConfig, oidc_config_from_fields
from admitd.risk.config import SECTION_KEYS as RISK_KEYS
from admitd.risk.config import RiskConfig, risk_config_from_fields
from admitd.sessions.config import SECTION_KEYS as SESSION_KEYS
from admitd.sessions.config import (
    SessionsConfig,
    mfa_rules_from_fields,
    sessions_config_from_fields,
)
from admitd.tls_listen import SECTION_KEYS as TLS_LISTEN_KEYS
from admitd.tls_listen import TlsListenConfig, tls_listen_config_from_fields
from admitd.web.config import SECTION_KEYS as WEB_KEYS
from admitd.web.config import WebConfig, web_config_from_fields
from admitd.workers_config import WorkerNeeds, workers_from_fields
from admitd.yamlsource import (
    KeyPath,
    YamlDocument,
    load_yaml,
    plain_value_from_text,
    yaml_document_from_text,
)

__all__ = ["UNIX_PREFIX", "Config", "TlsConfig", "config_from_document", "load_config"]

_TOP_KEYS = {
    "listen",
    "metrics_listen",
    "policies",
    "tls",
    "trusted_proxies",
    "redis_url",
    "log_level",
    "dev_mode",
    "grace_seconds",
    "kms",
    "policy_reload_seconds",
    "risk",
    "audit",
    "sessions",
    "mfa",
    "web",
    "admin",
    "tls_listen",
    "jwt",
    "oidc",
    "http_listen",
    "mesh",
    "keys",
    "event_loop",
    "workers",
}
_TLS_KEYS = {
    "trust_bundle",
    "crl_files",
    "deny_list",
    "max_chain_length",
    "revocation_poll_seconds",
    "verify_cache_size",
}
_PROXY_KEYS = {"name", "principals", "cidrs", "header", "caller"}
_ENV_PREFIX = "ADMITD_"
_ENV_IGNORED = {"ADMITD_CONFIG"}
_ENV_IGNORED_PREFIXES = ("ADMITD_FUZZ_",)  # the fuzz suite's own knobs (docs/fuzzing.md)


@dataclass(frozen=True, slots=True)
class TlsConfig:
    trust_bundles: tuple[Path, ...]
    crl_files: tuple[Path, ...] = ()
    deny_list: Path | None = None
    max_chain_length: int = 8
    revocation_poll_seconds: float = 2.0
    verify_cache_size: int = 10_000


@dataclass(frozen=True, slots=True)
class Config:
    file: str
    policies: Path
    tls: TlsConfig
    listen: str = "127.0.0.1:9001"
    metrics_listen: str = "127.0.0.1:9464"
    trusted_proxies: tuple[TrustedProxy, ...] = ()
    redis_url: str | None = None
    log_level: str = "info"
    dev_mode: bool = False
    grace_seconds: float = 5.0
    policy_reload_seconds: float = 2.0
    kms: KmsConfig | None = None
    sessions: SessionsConfig = field(default_factory=SessionsConfig)
    mfa_rules: MfaRules = field(default_factory=MfaRules)  # also read from `sessions:`
    mfa: MfaConfig = field(default_factory=MfaConfig)
    web: WebConfig | None = None
    admin: AdminConfig | None = None
    risk: RiskConfig = field(default_factory=RiskConfig)
    audit: AuditConfig | None = None  # None: no `audit:` section, no hash-chained log
    tls_listen: TlsListenConfig | None = None  # the Check service over (m)TLS as well
    jwt: JwtConfig | None = None  # JWT bearer tokens from IdPs (docs/identity.md)
    oidc: OidcConfig | None = None  # browser sign-in at an IdP (docs/identity.md)
    mesh: MeshSettings | None = None  # identity the asking Envoy verified (docs/mesh.md)
    keys: KeysConfig = field(default_factory=KeysConfig)  # key custody (docs/envelope.md)
    http_listen: str = ""  # Envoy's HTTP ext_authz, loopback or unix:// (docs/http-authz.md)
    event_loop: str = "auto"  # auto (uvloop when installed) | uvloop | asyncio
    workers: int = 1  # processes sharing the Check port (docs/workers.md)


# The parsers read defaults from here, so each is written once, in the dataclasses above;
# the required fields are placeholders that nothing reads.
_DEFAULTS = Config(file="", policies=Path(), tls=TlsConfig(trust_bundles=()))


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment, and validate. Raises ConfigError."""
    doc = load_yaml(path)
    return config_from_document(_with_environment(doc, os.environ if environ is None else environ))


def config_from_text(text: str, file: str, environ: Mapping[str, str] | None = None) -> Config:
    return config_from_document(
        _with_environment(yaml_document_from_text(text, file), environ or {})
    )


def config_from_document(doc: YamlDocument) -> Config:
    fields = Fields(doc, (), doc.data, _TOP_KEYS)
    base = Path(doc.file).resolve().parent
    log_level = fields.choice(
        "log_level", _DEFAULTS.log_level, ("debug", "info", "warning", "error")
    )
    dev_mode = fields.flag("dev_mode", _DEFAULTS.dev_mode)
    tls_listen = tls_listen_config_from_fields(fields.sub("tls_listen", TLS_LISTEN_KEYS))
    web = web_config_from_fields(fields.sub("web", WEB_KEYS)) if fields.has("web") else None
    listen = _check_listen(fields, tls_listen)
    listeners = ListenFacts(
        unix_listen=listen.startswith(UNIX_PREFIX),
        mtls_listen=tls_listen is not None and tls_listen.client_ca is not None,
        tcp_listen=bool(listen and not listen.startswith(UNIX_PREFIX)) or tls_listen is not None,
    )
    mesh = mesh_settings_from_fields(
        fields.sub("mesh", MESH_KEYS), listeners, present="mesh" in fields.raw
    )
    proxies = tuple(
        _proxy(doc, path, raw, listeners) for path, raw in fields.mapping_list("trusted_proxies")
    )
    _refuse_shared_callers(fields, mesh, proxies)
    keys = _keys(fields)
    http_listen = http_listen_from_fields(fields)
    return Config(
        file=doc.file,
        policies=_path(fields, "policies", base),
        tls=_tls(fields.sub("tls", _TLS_KEYS), base),
        listen=listen,
        metrics_listen=_address(fields, "metrics_listen", _DEFAULTS.metrics_listen, optional=True),
        trusted_proxies=proxies,
        redis_url=_redis_url(fields),
        log_level=log_level,
        dev_mode=dev_mode,
        grace_seconds=fields.number("grace_seconds", _DEFAULTS.grace_seconds),
        policy_reload_seconds=fields.number(
            "policy_reload_seconds", _DEFAULTS.policy_reload_seconds, minimum=0.1
        ),
        kms=_kms(fields, dev_mode),
        sessions=sessions_config_from_fields(fields.sub("sessions", SESSION_KEYS)),
        mfa_rules=mfa_rules_from_fields(fields.sub("sessions", SESSION_KEYS)),
        mfa=mfa_config_from_fields(fields.sub("mfa", MFA_KEYS)),
        web=web,
        admin=admin_config_from_fields(fields.sub("admin", ADMIN_KEYS)),
        risk=risk_config_from_fields(fields.sub("risk", RISK_KEYS)),
        audit=audit_config_from_fields(fields.sub("audit", AUDIT_KEYS))
        if fields.has("audit")
        else None,
        tls_listen=tls_listen,
        jwt=jwt_config_from_fields(fields.sub("jwt", JWT_KEYS)) if fields.has("jwt") else None,
        oidc=oidc_config_from_fields(fields.sub("oidc", OIDC_KEYS), web)
        if fields.has("oidc")
        else None,
        mesh=mesh,
        keys=keys,
        http_listen=http_listen,
        event_loop=_event_loop(fields),
        workers=workers_from_fields(
            fields,
            WorkerNeeds(
                unix_listen=listen.startswith(UNIX_PREFIX) or http_listen.startswith(UNIX_PREFIX),
                has_redis=fields.has("redis_url"),
                writes_sessions=web is not None or fields.has("admin"),
            ),
        ),
    )


def _event_loop(fields: Fields) -> str:
    choice = fields.choice("event_loop", _DEFAULTS.event_loop, ("auto", "uvloop", "asyncio"))
    if choice == "uvloop" and importlib.util.find_spec("uvloop") is None:
        raise fields.error(
            "event_loop", "uvloop is not installed", "pip install 'admitd[uvloop]', or use auto"
        )
    return choice


def _keys(fields: Fields) -> KeysConfig:
    """The `keys:` section (key custody, docs/envelope.md): the Keys API on the admin
    port, change requests in Redis, keys at an admitd-managed provider."""
    keys = keys_config_from_fields(fields.sub("keys", KEYS_KEYS))
    if not keys.custodians:
        return keys
    for needed, fix in (
        ("admin", "configure admin: (the Keys API is served on the admin port)"),
        ("redis_url", "set redis_url (change requests are shared through Redis)"),
        ("kms", "configure kms: with provider local or pkcs11"),
    ):
        if not fields.has(needed):
            raise fields.error("keys", f"keys.custodians needs {needed}", f"{fix}, or remove keys:")
    return keys


def _refuse_shared_callers(
    fields: Fields, mesh: MeshSettings | None, proxies: tuple[TrustedProxy, ...]
) -> None:
    """One Check caller is either a mesh caller (it vouches for SPIFFE IDs) or a proxy
    that forwards users' certificates, never both: one of the two would silently lose."""
    callers = [c for c in mesh.callers] if mesh is not None else []
    for index, proxy in enumerate(proxies):
        if proxy.caller is None:
            continue
        clash = next((c for c in callers if c.overlaps(proxy.caller)), None)
        if clash is not None:
            raise fields.doc.error(
                ("trusted_proxies", index, "caller"),
                f"the same Check calls would also be mesh caller {clash.name!r}",
                "name each Envoy once: in mesh.callers or in trusted_proxies (docs/mesh.md)",
            )


def _check_listen(fields: Fields, tls_listen: TlsListenConfig | None) -> str:
    """The plaintext Check address, HOST:PORT or unix:///path; `""` turns it off, once
    `tls_listen` serves Check."""
    raw = fields.raw.get("listen")
    if isinstance(raw, str) and raw.startswith("unix:"):
        return _unix_listen(fields, raw)
    listen = _address(fields, "listen", _DEFAULTS.listen, optional=True)
    if not listen and tls_listen is None and not fields.raw.get("http_listen"):
        raise fields.error(
            "listen",
            "nothing would serve Check",
            "set listen: HOST:PORT or configure tls_listen or http_listen",
        )
    return listen


def _unix_listen(fields: Fields, value: str) -> str:
    path = Path(value.removeprefix(UNIX_PREFIX))
    if not value.startswith(UNIX_PREFIX) or not path.is_absolute():
        raise fields.error(
            "listen",
            f"expected unix:///absolute/path, got {value!r}",
            "e.g. unix:///run/admitd/check.sock",
        )
    if len(os.fsencode(path)) > _MAX_SOCKET_PATH:
        raise fields.error(
            "listen",
            f"{path} is longer than a Unix socket path may be ({_MAX_SOCKET_PATH} bytes)",
            "use a shorter path",
        )
    if not path.parent.is_dir():
        raise fields.error(
            "listen", f"{path.parent} is not a directory", "create it, or mount a volume there"
        )
    if path.exists() and not path.is_socket():
        raise fields.error(
            "listen", f"{path} exists and is not a socket", "remove it or pick another path"
        )
    return value


UNIX_PREFIX = "unix://"
_MAX_SOCKET_PATH = 107  # sun_path is 108 bytes with the terminating NUL


def _kms(fields: Fields, dev_mode: bool) -> KmsConfig | None:
    """The `kms:` section (see docs/envelope.md); absent outside dev builds means no sealing yet."""
    raw = fields.raw.get("kms")
    if raw is None and not dev_mode:
        return None
    if raw is not None and not isinstance(raw, Mapping):
        raise fields.error("kms", "expected a mapping", "see docs/envelope.md")
    return kms_config_from_fields(fields.sub("kms", KMS_KEYS), dev_mode=dev_mode)


def _tls(fields: Fields, base: Path) -> TlsConfig:
    bundles = fields.texts("trust_bundle")
    if not bundles:
        raise fields.error(
            "trust_bundle",
            "required",
            "a PEM file (or list of files) of the CAs that issue client certificates",
        )
    deny = fields.optional_text("deny_list")
    defaults = _DEFAULTS.tls
    return TlsConfig(
        trust_bundles=tuple(base / b for b in bundles),
        crl_files=tuple(base / c for c in fields.texts("crl_files")),
        deny_list=base / deny if deny else None,
        max_chain_length=fields.integer(
            "max_chain_length", defaults.max_chain_length, minimum=1, maximum=16
        ),
        revocation_poll_seconds=fields.number(
            "revocation_poll_seconds", defaults.revocation_poll_seconds, minimum=0.1
        ),
        verify_cache_size=fields.integer(
            "verify_cache_size", defaults.verify_cache_size, maximum=10_000_000
        ),
    )


def _proxy(doc: YamlDocument, path: KeyPath, raw: object, listeners: ListenFacts) -> TrustedProxy:
    fields = Fields(doc, path, raw, _PROXY_KEYS)
    principals, cidrs = fields.texts("principals"), fields.texts("cidrs")
    caller = None
    if fields.has("caller"):  # the Envoy asking admitd is the proxy (Istio, Envoy Gateway)
        caller = check_caller(
            fields.sub("caller", CALLER_KEYS - {"name"}), listeners, fields.text("name", "caller")
        )
    if not principals and not cidrs and caller is None:
        raise fields.error(
            "principals",
            "a trusted proxy needs `principals`, `cidrs` or `caller`",
            "say how to recognise it",
        )
    networks = fields.networks("cidrs", "10.0.0.0/8 or fd00::/8")
    header = fields.choice("header", "xfcc", tuple(ForwardHeader))
    name = fields.text("name", caller.name if caller else (principals or cidrs)[0])
    return TrustedProxy(name, ForwardHeader(header), frozenset(principals), networks, caller)


def _path(fields: Fields, key: str, base: Path) -> Path:
    path = base / fields.text(key)
    fix = "point it at a policy file or a directory of them"
    try:
        exists = path.exists()
    except OSError as exc:  # e.g. ENAMETOOLONG: exists() answers False only for "not there"
        raise fields.error(key, f"cannot use {path}: {exc.strerror}", fix) from None
    if not exists:
        raise fields.error(key, f"{path} does not exist", fix)
    return path


def _address(fields: Fields, key: str, default: str, *, optional: bool = False) -> str:
    if optional and fields.raw.get(key, default) in ("", None, False):
        return ""
    return fields.address(key, default)


def _redis_url(fields: Fields) -> str | None:
    url = fields.optional_text("redis_url")
    if url is not None and not url.startswith(_REDIS_SCHEMES):
        raise fields.error(
            "redis_url", "unsupported scheme", f"use one of {', '.join(_REDIS_SCHEMES)}"
        )
    return url


_REDIS_SCHEMES = (
    "redis://",
    "rediss://",
    "unix://",
    "redis+sentinel://",
    "redis+cluster://",
    "rediss+cluster://",
)


def _with_environment(doc: YamlDocument, environ: Mapping[str, str]) -> YamlDocument:
    data = doc.data if isinstance(doc.data, dict) else {}
    for name, value in sorted(environ.items()):
        if not name.startswith(_ENV_PREFIX) or name in _ENV_IGNORED:
            continue
        if name.startswith(_ENV_IGNORED_PREFIXES):
            continue
        path = tuple(part.lower() for part in name[len(_ENV_PREFIX) :].split("__"))
        target = data
        for part in path[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(
                    f"{'.'.join(path[:-1])} is not a mapping", file=f"environment variable {name}"
                )
        origin = f"environment variable {name}"
        target[path[-1]] = plain_value_from_text(value, origin) if value else ""
        doc.origins[path] = origin
    return YamlDocument(doc.file, data, doc.lines, doc.origins)
