"""The `admin:` config section: where the admin API listens, its TLS files, who may call it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from admitd.certs.keypair import key_pair_problem
from admitd.certs.principals import principal_from_text

if TYPE_CHECKING:
    from admitd.fields import Fields

__all__ = ["SECTION_KEYS", "AdminConfig", "admin_config_from_fields", "principal_from_text"]

SECTION_KEYS = {"listen", "server_cert", "server_key", "principals"}
_DEFAULT_LISTEN = "127.0.0.1:9443"


@dataclass(frozen=True, slots=True)
class AdminConfig:
    """`principals` are SAN URIs (SPIFFE IDs), SAN DNS names or RFC 4514 subjects
    (normalised) of the client certificates allowed to call the admin API."""

    server_cert: Path
    server_key: Path
    principals: frozenset[str]
    listen: str = _DEFAULT_LISTEN


def admin_config_from_fields(fields: Fields) -> AdminConfig | None:
    """`fields` reads the `admin:` mapping; None when the section is absent (no admin API).

    Relative file paths are relative to the config file's directory.
    """
    if not fields.raw:
        return None
    base = Path(fields.doc.file).resolve().parent
    principals = fields.texts("principals")
    if not principals:
        raise fields.error(
            "principals",
            "the admin API needs at least one allowed caller",
            "list SAN URIs, DNS names or subjects, e.g. spiffe://example.org/sa/login",
        )
    allowed = frozenset(principal_from_text(fields, "principals", p) for p in principals)
    listen = fields.address("listen", _DEFAULT_LISTEN)
    cert, key = _key_pair(fields, base)
    return AdminConfig(server_cert=cert, server_key=key, principals=allowed, listen=listen)


def _key_pair(fields: Fields, base: Path) -> tuple[Path, Path]:
    cert = _existing_file(fields, "server_cert", base)
    key = _existing_file(fields, "server_key", base)
    problem = key_pair_problem(cert, key)  # refused here, naming the file, not deep in gRPC
    if problem is not None:
        raise fields.error(
            "server_key" if "private key" in problem else "server_cert",
            problem,
            "give the PEM certificate (then its chain) and the unencrypted PEM key issued with it",
        )
    return cert, key


def _existing_file(fields: Fields, key: str, base: Path) -> Path:
    path = base / fields.text(key)
    fix = "a PEM file for the admin API's TLS"
    try:
        is_file = path.is_file()
    except OSError as exc:  # e.g. ENAMETOOLONG: is_file() answers False only for "not there"
        raise fields.error(key, f"cannot use {path}: {exc.strerror}", fix) from None
    if not is_file:
        raise fields.error(key, f"{path} does not exist", fix)
    return path
