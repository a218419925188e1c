"""The keyring file: JSON, one base64 32-byte key per version, mode 0600 enforced."""

from __future__ import annotations

import base64
import binascii
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from admitd.errors import ConfigError
from admitd.kms.base import KeyState, check_alias
from admitd.kms.keyring import KeyEntry, Keyring
from admitd.kms.wrap import MASTER_KEY_BYTES

__all__ = ["KEYRING_FORMAT", "check_keyring_mode", "keyring_from_file", "write_keyring"]

KEYRING_FORMAT = "admitd-keyring/1"


def check_keyring_mode(path: Path, mode: int) -> None:
    """Refuse a keyring any group or other user can read, write or traverse."""
    if stat.S_IMODE(mode) & 0o077:
        raise ConfigError(
            f"keyring file is accessible by group or others (mode {stat.S_IMODE(mode):04o});"
            " master keys must be readable by the admitd user only",
            file=str(path),
            fix=f"chmod 600 {path}",
        )


def keyring_from_file(path: Path) -> tuple[Keyring, os.stat_result]:
    """Read and validate the keyring at `path`; `ConfigError` on any problem."""
    try:
        with path.open("rb") as handle:
            # Check the mode of the file actually opened, not of a path that
            # could be swapped between the check and the read.
            info = os.fstat(handle.fileno())
            check_keyring_mode(path, info.st_mode)
            raw = handle.read()
    except FileNotFoundError:
        raise ConfigError(
            "keyring file does not exist",
            file=str(path),
            fix="create it with `admitd keys init --config <admitd.yaml>`",
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read keyring file: {exc.strerror}", file=str(path)) from None
    return _keyring_from_json(raw, str(path)), info


def _keyring_from_json(raw: bytes, file: str) -> Keyring:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ConfigError("keyring file is not valid JSON", file=file) from None
    if not isinstance(doc, dict) or doc.get("format") != KEYRING_FORMAT:
        raise ConfigError(f"not an admitd keyring (expected format {KEYRING_FORMAT!r})", file=file)
    aliases = doc.get("aliases")
    if not isinstance(aliases, dict):
        raise ConfigError("must be a mapping of alias to versions", file=file, key="aliases")
    parsed = {
        check_alias(a, file=file, key="aliases"): _entries(v, file, f"aliases.{a}")
        for a, v in aliases.items()
    }
    return Keyring(MappingProxyType(parsed))


def _entries(raw: object, file: str, key: str) -> tuple[KeyEntry, ...]:
    versions = raw.get("versions") if isinstance(raw, dict) else None
    if not isinstance(versions, list) or not versions:
        raise ConfigError("must hold a non-empty list `versions`", file=file, key=key)
    entries = tuple(_entry(v, file, f"{key}.versions[{i}]") for i, v in enumerate(versions))
    numbers = [e.version for e in entries]
    if numbers != sorted(set(numbers)):
        raise ConfigError("versions must be unique and ascending", file=file, key=key)
    if sum(e.state is KeyState.ACTIVE for e in entries) != 1:
        raise ConfigError("exactly one version must be active", file=file, key=key)
    return entries


def _entry(raw: object, file: str, key: str) -> KeyEntry:
    if not isinstance(raw, dict):
        raise ConfigError("must be a mapping", file=file, key=key)
    version, created = raw.get("version"), raw.get("created", "")
    if not isinstance(version, int) or isinstance(version, bool) or not 0 < version < 2**32:
        raise ConfigError("must be an integer from 1 to 2^32-1", file=file, key=f"{key}.version")
    try:
        state = KeyState(str(raw.get("state")))
    except ValueError:
        allowed = ", ".join(s.value for s in KeyState)
        raise ConfigError(f"must be one of {allowed}", file=file, key=f"{key}.state") from None
    if not isinstance(created, str):
        raise ConfigError("must be an RFC 3339 string", file=file, key=f"{key}.created")
    if state is KeyState.RETIRED:
        return KeyEntry(version, state, created, None, str(raw.get("retired", "")))
    return KeyEntry(version, state, created, _key(raw.get("key"), file, f"{key}.key"))


def _key(raw: object, file: str, key: str) -> bytes:
    # The message never echoes the value: it is key material.
    try:
        material = base64.b64decode(raw, validate=True) if isinstance(raw, str) else b""
    except binascii.Error:
        material = b""
    if len(material) != MASTER_KEY_BYTES:
        raise ConfigError(f"must be {MASTER_KEY_BYTES} bytes in base64", file=file, key=key)
    return material


def _json_from_keyring(keyring: Keyring) -> bytes:
    doc = {
        "format": KEYRING_FORMAT,
        "aliases": {
            alias: {"versions": [_json_entry(e) for e in entries]}
            for alias, entries in sorted(keyring.aliases.items())
        },
    }
    return json.dumps(doc, indent=2).encode() + b"\n"


def _json_entry(entry: KeyEntry) -> Mapping[str, object]:
    out: dict[str, object] = {
        "version": entry.version,
        "state": entry.state.value,
        "created": entry.created,
    }
    if entry.key is not None:
        out["key"] = base64.b64encode(entry.key).decode()
    if entry.retired:
        out["retired"] = entry.retired
    return out


def write_keyring(path: Path, keyring: Keyring) -> None:
    """Atomically replace `path` with `keyring`, mode 0600 from the first byte."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(_json_from_keyring(keyring))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename durable: a crash must not bring the old keyring back
    # after records were already sealed under the new version.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
