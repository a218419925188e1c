"""The local keyring, dev and in-memory providers: keys, rotation, retirement, permissions."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest

from admitd.errors import ConfigError
from admitd.kms import (
    AliasNotFound,
    DevKms,
    KeyAdminUnsupported,
    KeyInUse,
    KeyState,
    KeyVersionNotFound,
    Kms,
    KmsError,
    LocalKms,
    ManagedKms,
    MemoryKms,
    WrongKey,
    create_keyring_file,
)
from admitd.kms.dev import dev_master_key

ALIASES = ("kms/session-secrets", "kms/audit-log")
DEK = bytes(range(32))


@pytest.fixture
def keyring(tmp_path: Path) -> Path:
    path = tmp_path / "keyring.json"
    create_keyring_file(path, ALIASES)
    return path


def test_providers_satisfy_the_protocols(keyring: Path) -> None:
    for kms in (LocalKms(keyring), MemoryKms.with_aliases(ALIASES), DevKms(ALIASES, dev_mode=True)):
        assert isinstance(kms, Kms) and isinstance(kms, ManagedKms)


def test_keyring_file_is_created_0600_with_one_active_version(keyring: Path) -> None:
    assert stat.S_IMODE(keyring.stat().st_mode) == 0o600
    kms = LocalKms(keyring)
    assert kms.aliases() == tuple(sorted(ALIASES))
    (version,) = kms.versions("kms/audit-log")
    assert (version.version, version.state) == (1, KeyState.ACTIVE)


def test_init_is_idempotent_and_adds_missing_aliases(keyring: Path) -> None:
    before = json.loads(keyring.read_text())
    assert create_keyring_file(keyring, ALIASES) == ()
    assert json.loads(keyring.read_text()) == before
    assert create_keyring_file(keyring, (*ALIASES, "kms/device-telemetry")) == (
        "kms/device-telemetry",
    )


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o620, 0o602, 0o610])
def test_keyring_accessible_by_others_is_refused(keyring: Path, mode: int) -> None:
    keyring.chmod(mode)
    with pytest.raises(ConfigError) as caught:
        LocalKms(keyring)
    assert caught.value.file == str(keyring)
    assert caught.value.fix == f"chmod 600 {keyring}"
    assert str(keyring) in str(caught.value) and "chmod 600" in str(caught.value)


def test_keyring_0400_is_accepted(keyring: Path) -> None:
    keyring.chmod(0o400)
    assert LocalKms(keyring).active_version("kms/audit-log") == 1


def test_missing_keyring_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="admitd keys init"):
        LocalKms(tmp_path / "absent.json")


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda d: d.update(format="other"), None),
        (lambda d: d["aliases"]["kms/audit-log"]["versions"][0].update(key="AAAA"), "key"),
        (lambda d: d["aliases"]["kms/audit-log"]["versions"][0].update(state="x"), "state"),
        (lambda d: d["aliases"]["kms/audit-log"]["versions"][0].update(version=0), "version"),
        (lambda d: d["aliases"]["kms/audit-log"]["versions"][0].update(state="decrypt-only"), None),
        (lambda d: d["aliases"].update({"Bad Alias": {"versions": []}}), "aliases"),
    ],
    ids=["format", "short-key", "state", "version", "no-active", "alias"],
)
def test_malformed_keyring_is_a_config_error(keyring: Path, edit: object, key: str | None) -> None:
    doc = json.loads(keyring.read_text())
    edit(doc)  # type: ignore[operator]
    keyring.write_text(json.dumps(doc))
    with pytest.raises(ConfigError) as caught:
        LocalKms(keyring)
    if key:
        assert key in (caught.value.key or "")
    material = json.loads(keyring.read_text())["aliases"]["kms/session-secrets"]["versions"][0]
    assert material["key"] not in str(caught.value)


def test_rotate_then_retire_local(keyring: Path) -> None:
    kms = LocalKms(keyring)
    wrapped = kms.wrap_dek("kms/audit-log", DEK)
    assert kms.rotate("kms/audit-log").version == 2
    states = [(v.version, v.state) for v in kms.versions("kms/audit-log")]
    assert states == [(1, KeyState.DECRYPT_ONLY), (2, KeyState.ACTIVE)]
    assert kms.unwrap_dek("kms/audit-log", 1, wrapped.wrapped) == DEK
    assert kms.wrap_dek("kms/audit-log", DEK).key_version == 2
    with pytest.raises(KeyInUse):
        kms.retire("kms/audit-log", 2)
    kms.retire("kms/audit-log", 1)
    with pytest.raises(KeyVersionNotFound, match="retired"):
        kms.unwrap_dek("kms/audit-log", 1, wrapped.wrapped)
    entry = json.loads(keyring.read_text())["aliases"]["kms/audit-log"]["versions"][0]
    assert entry["state"] == "retired" and "key" not in entry  # material destroyed
    assert stat.S_IMODE(keyring.stat().st_mode) == 0o600
    assert kms.rotate("kms/audit-log").version == 3  # versions are never reused


def test_other_process_rotation_is_seen_on_unknown_version(keyring: Path) -> None:
    server, admin = LocalKms(keyring, reload_seconds=3600), LocalKms(keyring)
    admin.rotate("kms/audit-log")
    wrapped = admin.wrap_dek("kms/audit-log", DEK)
    assert server.unwrap_dek("kms/audit-log", 2, wrapped.wrapped) == DEK


def test_active_version_reloads_after_interval(keyring: Path) -> None:
    now = [0.0]
    server = LocalKms(keyring, reload_seconds=5, clock=lambda: now[0])
    LocalKms(keyring).rotate("kms/audit-log")
    assert server.active_version("kms/audit-log") == 1
    now[0] = 6.0
    assert server.active_version("kms/audit-log") == 2


def test_bad_reload_keeps_loaded_keys(keyring: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = LocalKms(keyring, reload_seconds=0)
    keyring.chmod(0o644)
    os.utime(keyring, ns=(1, 1))
    with caplog.at_level(logging.ERROR):
        assert server.active_version("kms/audit-log") == 1
    assert "keyring reload failed" in caplog.text


def test_wrong_key_and_missing_versions() -> None:
    a, b = MemoryKms.with_aliases(ALIASES), MemoryKms.with_aliases(ALIASES)
    wrapped = a.wrap_dek("kms/audit-log", DEK)
    with pytest.raises(WrongKey):
        b.unwrap_dek("kms/audit-log", 1, wrapped.wrapped)
    with pytest.raises(WrongKey):
        a.unwrap_dek("kms/audit-log", 1, wrapped.wrapped[:-1])
    with pytest.raises(WrongKey):  # bound to its alias, even under the same key
        a.unwrap_dek("kms/session-secrets", 1, wrapped.wrapped)
    with pytest.raises(KeyVersionNotFound):
        a.unwrap_dek("kms/audit-log", 7, wrapped.wrapped)
    with pytest.raises(AliasNotFound):
        a.unwrap_dek("kms/nope", 1, wrapped.wrapped)
    with pytest.raises(KmsError, match="32 bytes"):
        a.wrap_dek("kms/audit-log", b"short")


def test_duplicate_alias_is_refused() -> None:
    with pytest.raises(KmsError, match="already exists"):
        MemoryKms.with_aliases(ALIASES).create_alias("kms/audit-log")


def test_dev_keys_are_deterministic_and_per_alias() -> None:
    assert dev_master_key("kms/audit-log", 1) == dev_master_key("kms/audit-log", 1)
    assert dev_master_key("kms/audit-log", 1) != dev_master_key("kms/session-secrets", 1)
    assert dev_master_key("kms/audit-log", 1) != dev_master_key("kms/audit-log", 2)
    # Pinned: changing the derivation would strand every sealed dev fixture.
    assert dev_master_key("kms/audit-log", 1).hex() == (
        "7aa20418f37faed724d8dc17d0dc27abebe47b4f6af8a14a72492ad8a75a5597"
    )


def test_dev_wraps_open_across_instances() -> None:
    wrapped = DevKms(ALIASES, dev_mode=True).wrap_dek("kms/audit-log", DEK)
    assert DevKms(ALIASES, dev_mode=True).unwrap_dek("kms/audit-log", 1, wrapped.wrapped) == DEK


def test_dev_is_refused_outside_dev_mode() -> None:
    with pytest.raises(KmsError, match="development build"):
        DevKms(ALIASES, dev_mode=False)


def test_dev_is_logged_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        DevKms(ALIASES, dev_mode=True)
    assert "INSECURE" in caplog.text


def test_dev_has_no_key_admin() -> None:
    kms = DevKms(ALIASES, dev_mode=True, active_version=2)
    assert [v.state for v in kms.versions("kms/audit-log")] == [
        KeyState.DECRYPT_ONLY,
        KeyState.ACTIVE,
    ]
    with pytest.raises(KeyAdminUnsupported):
        kms.rotate("kms/audit-log")
    with pytest.raises(KeyAdminUnsupported):
        kms.retire("kms/audit-log", 1)


def test_log_audit_events_writes_one_json_line(caplog: pytest.LogCaptureFixture) -> None:
    from admitd.kms import AuditEvents, LogAuditEvents

    audit = LogAuditEvents()
    assert isinstance(audit, AuditEvents)
    with caplog.at_level(logging.INFO, logger="admitd.audit"):
        audit.record("kms.key.rotated", {"alias": "kms/audit-log", "active_version": "2"})
    (record,) = caplog.records
    assert json.loads(record.getMessage()) == {
        "event": "kms.key.rotated",
        "alias": "kms/audit-log",
        "active_version": "2",
    }
