"""The `http_listen` key: where Envoy's HTTP ext_authz reaches admitd ("" = off).

Only loopback or a Unix socket: the listener believes the x-forwarded-client-cert header
it is sent (docs/http-authz.md, "Trust model"), so nothing but the local Envoy may reach it.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
from pathlib import Path

from admitd.fields import Fields

__all__ = ["KEY", "UNIX_PREFIX", "http_listen_from_fields"]

KEY = "http_listen"
UNIX_PREFIX = "unix://"
_MAX_SOCKET_PATH = 107  # sun_path is 108 bytes with the terminating NUL
_EXAMPLE = "127.0.0.1:9003"


def http_listen_from_fields(fields: Fields) -> str:
    """HOST:PORT on loopback, or unix:///absolute/path; "" when unset. Raises ConfigError."""
    raw = fields.raw.get(KEY, "")
    if raw in ("", None, False):
        return ""
    if isinstance(raw, str) and raw.startswith("unix:"):
        address = _unix(fields, raw)
    else:
        address = fields.address(KEY, example=_EXAMPLE)
        _require_loopback(fields, address)
    if importlib.util.find_spec("httptools") is None:
        raise fields.error(KEY, "httptools is not installed", "pip install 'admitd[http]'")
    return address


def _require_loopback(fields: Fields, address: str) -> None:
    host = address.rpartition(":")[0]
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise fields.error(
            KEY,
            f"{host} is not a loopback address: anyone who can reach it could send a forged"
            " x-forwarded-client-cert",
            f"use {_EXAMPLE}, [::1]:PORT or unix:///path, reachable by the local Envoy only",
        )


def _unix(fields: Fields, value: str) -> str:
    path = Path(value.removeprefix(UNIX_PREFIX))
    if not value.startswith(UNIX_PREFIX) or not path.is_absolute():
        raise fields.error(
            KEY,
            f"expected unix:///absolute/path, got {value!r}",
            "e.g. unix:///run/admitd/http.sock",
        )
    if len(os.fsencode(path)) > _MAX_SOCKET_PATH:
        raise fields.error(
            KEY,
            f"{path} is longer than a Unix socket path may be ({_MAX_SOCKET_PATH} bytes)",
            "use a shorter path",
        )
    if not path.parent.is_dir():
        raise fields.error(KEY, f"{path.parent} is not a directory", "create it, or mount a volume")
    if path.exists() and not path.is_socket():
        raise fields.error(KEY, f"{path} exists and is not a socket", "remove it or pick another")
    return value
