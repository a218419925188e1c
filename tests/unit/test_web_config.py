"""The `web:` config section: defaults, origins, and the signing key file's checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from admitd.errors import ConfigError
from admitd.fields import Fields
from admitd.web import SECTION_KEYS, WebConfig, web_config_from_fields
from admitd.yamlsource import yaml_document_from_text


def load(tmp_path: Path, body: str) -> WebConfig:
    file = tmp_path / "admitd.yaml"
    doc = yaml_document_from_text(f"web:\n{body}", str(file))
    assert isinstance(doc.data, dict)
    return web_config_from_fields(Fields(doc, ("web",), doc.data["web"], SECTION_KEYS))


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "web.key"
    path.write_bytes(b"\x01" * 32)
    path.chmod(0o600)
    return path


def test_defaults(tmp_path: Path, key_file: Path) -> None:
    config = load(tmp_path, "  rp_id: Example.com\n  signing_key_file: web.key\n")
    assert config.listen == "127.0.0.1:9002"
    assert config.rp_id == "example.com" and config.rp_name == "admitd"
    assert config.origins == ("https://example.com",)
    assert config.signing_key == b"\x01" * 32
    assert "\\x01" not in repr(config)


def test_explicit_values(tmp_path: Path, key_file: Path) -> None:
    config = load(
        tmp_path,
        "  listen: 0.0.0.0:9100\n  rp_id: example.com\n  rp_name: Acme\n"
        f"  signing_key_file: {key_file}\n"
        "  origins: [https://login.example.com:8443, https://example.com]\n",
    )
    assert config.listen == "0.0.0.0:9100" and config.rp_name == "Acme"
    assert config.origins == ("https://login.example.com:8443", "https://example.com")


@pytest.mark.parametrize(
    "origin",
    [
        "http://example.com",
        "https://evil.com",
        "https://notexample.com",
        "https://example.com/path",
        "https://user@example.com",
        "https://example.com:99999",
        "example.com",
    ],
)
def test_bad_origins_name_the_key(tmp_path: Path, key_file: Path, origin: str) -> None:
    body = f"  rp_id: example.com\n  signing_key_file: web.key\n  origins: ['{origin}']\n"
    with pytest.raises(ConfigError, match=r"admitd.yaml:\d+: web.origins"):
        load(tmp_path, body)


def test_http_localhost_is_allowed_for_development(tmp_path: Path, key_file: Path) -> None:
    body = "  rp_id: localhost\n  signing_key_file: web.key\n  origins: [http://localhost:8080]\n"
    assert load(tmp_path, body).origins == ("http://localhost:8080",)


@pytest.mark.parametrize("rp_id", ["https://example.com", "example.com:8443", "."])
def test_bad_rp_id(tmp_path: Path, key_file: Path, rp_id: str) -> None:
    with pytest.raises(ConfigError, match=r"web\.rp_id"):
        load(tmp_path, f"  rp_id: '{rp_id}'\n  signing_key_file: web.key\n")


def test_short_key_names_the_file(tmp_path: Path, key_file: Path) -> None:
    key_file.write_bytes(b"x" * 31)
    with pytest.raises(ConfigError, match=r"web.signing_key_file: .*web.key holds 31 bytes"):
        load(tmp_path, "  rp_id: example.com\n  signing_key_file: web.key\n")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_group_or_world_readable_key_is_refused(tmp_path: Path, key_file: Path, mode: int) -> None:
    key_file.chmod(mode)
    with pytest.raises(ConfigError, match=r"web.key is readable by group or others \(chmod 600"):
        load(tmp_path, "  rp_id: example.com\n  signing_key_file: web.key\n")


def test_missing_key_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read .*absent.key.*head -c 32 /dev/urandom"):
        load(tmp_path, "  rp_id: example.com\n  signing_key_file: absent.key\n")


@pytest.mark.parametrize("key", ["rp_id", "signing_key_file"])
def test_required_keys(tmp_path: Path, key_file: Path, key: str) -> None:
    body = {"rp_id": "  rp_id: example.com\n", "signing_key_file": "  signing_key_file: web.key\n"}
    del body[key]
    with pytest.raises(ConfigError, match=f"web.{key}: required key is missing"):
        load(tmp_path, "".join(body.values()) or "  rp_name: x\n")


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"web\.cookie: unknown key"):
        load(tmp_path, "  cookie: x\n")


def test_bad_listen(tmp_path: Path, key_file: Path) -> None:
    with pytest.raises(ConfigError, match=r"web\.listen: expected HOST:PORT"):
        load(tmp_path, "  rp_id: example.com\n  signing_key_file: web.key\n  listen: nope\n")
