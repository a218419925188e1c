"""The `http_listen` key: loopback or a Unix socket only, errors that name it and the fix."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from admitd.config import load_config
from admitd.errors import ConfigError


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    (tmp_path / "policies.yaml").write_text("routes: []\n")
    path = tmp_path / "admitd.yaml"
    path.write_text("policies: policies.yaml\ntls:\n  trust_bundle: ca.pem\n")
    return path


def with_lines(config_file: Path, *lines: str) -> Path:
    config_file.write_text(config_file.read_text() + "".join(f"{line}\n" for line in lines))
    return config_file


def test_off_by_default(config_file: Path) -> None:
    assert load_config(config_file, environ={}).http_listen == ""


@pytest.mark.parametrize("address", ["127.0.0.1:9003", "[::1]:9003", "localhost:9003"])
def test_a_loopback_address_is_accepted(config_file: Path, address: str) -> None:
    config = load_config(with_lines(config_file, f'http_listen: "{address}"'), environ={})
    assert config.http_listen == address


def test_http_alone_may_serve_check(config_file: Path) -> None:
    config = load_config(
        with_lines(config_file, 'listen: ""', "http_listen: 127.0.0.1:9003"), environ={}
    )
    assert (config.listen, config.http_listen) == ("", "127.0.0.1:9003")


def test_nothing_serving_check_names_http_listen_in_the_fix(config_file: Path) -> None:
    with pytest.raises(ConfigError, match="or http_listen"):
        load_config(with_lines(config_file, 'listen: ""'), environ={})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param(
            "0.0.0.0:9003",
            r"http_listen: 0.0.0.0 is not a loopback address: anyone who can reach it could"
            r" send a forged x-forwarded-client-cert \(use 127.0.0.1:9003",
            id="all-interfaces",
        ),
        pytest.param("10.1.2.3:9003", r"http_listen: 10.1.2.3 is not a loopback", id="private"),
        pytest.param("admitd:9003", r"http_listen: admitd is not a loopback", id="a-name"),
        pytest.param("nowhere", r"http_listen: expected HOST:PORT", id="no-port"),
        pytest.param(
            "unix:relative.sock", r"http_listen: expected unix:///absolute/path", id="rel"
        ),
        pytest.param("unix:///no/such/dir/a.sock", r"/no/such/dir is not a directory", id="dir"),
    ],
)
def test_a_bad_address_names_the_key_and_the_fix(
    config_file: Path, value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        load_config(with_lines(config_file, f'http_listen: "{value}"'), environ={})
    assert "admitd.yaml:4" in str(raised.value)


def test_the_environment_sets_it_too(config_file: Path) -> None:
    config = load_config(config_file, environ={"ADMITD_HTTP_LISTEN": "127.0.0.1:9100"})
    assert config.http_listen == "127.0.0.1:9100"


def test_a_unix_socket_path(config_file: Path, tmp_path: Path) -> None:
    address = f"unix://{tmp_path}/http.sock"
    assert load_config(
        with_lines(config_file, f"http_listen: {address}"), environ={}
    ).http_listen == (address)


def test_a_file_that_is_not_a_socket_is_not_replaced(config_file: Path, tmp_path: Path) -> None:
    (tmp_path / "data.sock").write_text("precious")
    with pytest.raises(ConfigError, match="exists and is not a socket"):
        load_config(
            with_lines(config_file, f"http_listen: unix://{tmp_path}/data.sock"), environ={}
        )


def test_a_stale_socket_is_accepted(config_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
    config = load_config(with_lines(config_file, f"http_listen: unix://{path}"), environ={})
    assert config.http_listen == f"unix://{path}"
