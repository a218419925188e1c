"""The `audit:` config section and the Ed25519 checkpoint key files it names."""

from __future__ import annotations

import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from admitd.errors import ConfigError

if TYPE_CHECKING:
    from admitd.fields import Fields

__all__ = [
    "SECTION_KEYS",
    "AuditConfig",
    "audit_config_from_fields",
    "public_key_from_file",
    "signing_key_from_file",
]

SECTION_KEYS = {
    "stream_key",
    "spool_file",
    "spool_max_bytes",
    "checkpoint_interval_seconds",
    "signing_key_file",
    "public_key_file",
    "instance",
    "queue_max_entries",
    "batch_max_entries",
    "coalesce_seconds",
    "durable_answers",
}

DEFAULT_SPOOL = Path("/var/lib/admitd/audit-spool.jsonl")


@dataclass(frozen=True, slots=True)
class AuditConfig:
    """Where the chain lives, the local spool for outages, and the checkpoint keys."""

    stream_key: str = "admitd:audit"
    spool_file: Path = DEFAULT_SPOOL
    spool_max_bytes: int = 256 * 1024 * 1024
    checkpoint_interval_seconds: float = 60.0
    signing_key_file: Path | None = None
    public_key_file: Path | None = None
    instance: str = ""  # "" means the host name, filled in by audit_config_from_fields
    queue_max_entries: int = 10_000
    batch_max_entries: int = 256
    # Identical plain denials within this many seconds: one entry, then one with a count.
    coalesce_seconds: float = 1.0
    # A decision that needs an entry is answered once the entry is in Redis or the spool.
    durable_answers: bool = True

    @property
    def checkpoint_key(self) -> str:
        return f"{self.stream_key}:checkpoints"


_DEFAULTS = AuditConfig()  # the parser's defaults, so each is written once, above


def audit_config_from_fields(fields: Fields) -> AuditConfig:
    """`fields` reads the `audit:` mapping (allowed keys: SECTION_KEYS); paths are relative
    to the config file; key files are read now so a bad one stops start-up."""
    base = Path(fields.doc.file).resolve().parent
    signing = _optional_path(fields, "signing_key_file", base)
    public = _optional_path(fields, "public_key_file", base)
    if signing is not None:
        _check(fields, "signing_key_file", lambda: signing_key_from_file(signing))
    if public is not None:
        _check(fields, "public_key_file", lambda: public_key_from_file(public))
    return AuditConfig(
        stream_key=fields.text("stream_key", _DEFAULTS.stream_key),
        spool_file=_spool_file(fields, base),
        spool_max_bytes=fields.integer(
            "spool_max_bytes", _DEFAULTS.spool_max_bytes, minimum=64 * 1024, maximum=2**62
        ),
        checkpoint_interval_seconds=fields.number(
            "checkpoint_interval_seconds", _DEFAULTS.checkpoint_interval_seconds, minimum=1.0
        ),
        signing_key_file=signing,
        public_key_file=public,
        instance=fields.text("instance", socket.gethostname()),
        queue_max_entries=fields.integer(
            "queue_max_entries", _DEFAULTS.queue_max_entries, minimum=1
        ),
        batch_max_entries=fields.integer(
            "batch_max_entries", _DEFAULTS.batch_max_entries, minimum=1, maximum=10_000
        ),
        coalesce_seconds=_coalesce_seconds(fields),
        durable_answers=fields.flag("durable_answers", _DEFAULTS.durable_answers),
    )


COALESCE_MAX_SECONDS = 60.0  # longer windows would blur when a flood happened


def _coalesce_seconds(fields: Fields) -> float:
    seconds = fields.number("coalesce_seconds", _DEFAULTS.coalesce_seconds)
    if not 0.0 <= seconds <= COALESCE_MAX_SECONDS:  # also refuses .nan
        raise fields.error(
            "coalesce_seconds",
            f"expected 0 (off) to {COALESCE_MAX_SECONDS:g} seconds, got {seconds!r}",
            "e.g. 1 (the default), or 0 to write every denial as its own entry",
        )
    return seconds


def _spool_file(fields: Fields, base: Path) -> Path:
    """The spool's path, refused now when the file system cannot even look it up (e.g. a
    name too long): the spool opens it at start-up, where an OSError would be a traceback."""
    path = base / fields.text("spool_file", str(_DEFAULTS.spool_file))
    try:
        path.exists()
    except OSError as exc:
        fix = "a writable file path on local disk, e.g. /var/lib/admitd/audit-spool.jsonl"
        raise fields.error("spool_file", f"cannot use {path}: {exc.strerror}", fix) from None
    return path


def _optional_path(fields: Fields, key: str, base: Path) -> Path | None:
    value = fields.optional_text(key)
    return None if value is None else base / value


def _check(fields: Fields, key: str, load: Callable[[], object]) -> None:
    try:
        load()
    except ConfigError as exc:
        raise fields.error(key, exc.detail, exc.fix) from None


def signing_key_from_file(path: Path) -> Ed25519PrivateKey:
    """An unencrypted PKCS#8 PEM Ed25519 key that only its owner can read (mode 0600)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", file=str(path)) from None
    if mode & 0o077:
        raise ConfigError(
            f"{path} is readable by others (mode {mode:04o})",
            file=str(path),
            fix=f"chmod 600 {path}",
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{path} is not an unencrypted PEM private key", file=str(path)) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 key", file=str(path))
    return key


def public_key_from_file(path: Path) -> Ed25519PublicKey:
    """A PEM SubjectPublicKeyInfo Ed25519 key (published with the deployment)."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", file=str(path)) from None
    except ValueError:
        raise ConfigError(f"{path} is not a PEM public key", file=str(path)) from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path} is not an Ed25519 public key", file=str(path))
    return key
