"""The parts of admitd's Redis URLs, read once for the async server client and the sync CLI
client alike (`redis_client`, `redis_sync`).

`redis://`, `rediss://` and `unix://` go to redis-py as they are; the two multi-host forms
are admitd's own: `redis+sentinel://[:password@]host:port[,host:port...]/service_name[/db]`
and `redis+cluster://[:password@]host:port[,host:port...]` (`rediss+cluster://` for TLS).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from admitd.errors import ConfigError

__all__ = [
    "ClusterUrl",
    "SentinelUrl",
    "check_plain_scheme",
    "cluster_url",
    "is_cluster",
    "is_sentinel",
    "sentinel_url",
]

Hosts = tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class SentinelUrl:
    sentinels: Hosts
    service: str
    db: int
    password: str | None


@dataclass(frozen=True, slots=True)
class ClusterUrl:
    seeds: Hosts
    password: str | None
    tls: bool


def is_sentinel(url: str) -> bool:
    return url.startswith("redis+sentinel://")


def is_cluster(url: str) -> bool:
    return url.startswith(("redis+cluster://", "rediss+cluster://"))


def check_plain_scheme(url: str) -> None:
    """A single-server URL redis-py reads itself; anything else is a ConfigError."""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            f"unsupported Redis URL scheme in {url.split(':', 1)[0]!r}",
            key="redis_url",
            fix="use redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://",
        )


def sentinel_url(url: str) -> SentinelUrl:
    parts = urlsplit(url)
    path = [p for p in parts.path.split("/") if p]
    hosts = _hosts(parts.netloc)
    if not path or hosts is None or (len(path) > 1 and not path[1].isdigit()):
        raise ConfigError(
            "expected redis+sentinel://host:port[,host:port]/service_name[/db]", key="redis_url"
        )
    db = int(path[1]) if len(path) > 1 else 0
    return SentinelUrl(hosts, path[0], db, _password(parts.password))


def cluster_url(url: str) -> ClusterUrl:
    parts = urlsplit(url)
    hosts = _hosts(parts.netloc)
    if hosts is None:
        raise ConfigError("expected redis+cluster://host:port[,host:port...]", key="redis_url")
    return ClusterUrl(hosts, _password(parts.password), url.startswith("rediss+"))


def _hosts(netloc: str) -> Hosts | None:
    pairs = [h.rsplit(":", 1) for h in netloc.rsplit("@", 1)[-1].split(",")]
    if not pairs or not all(len(h) == 2 and h[0] and h[1].isdigit() for h in pairs):
        return None
    return tuple((host, int(port)) for host, port in pairs)


def _password(raw: str | None) -> str | None:
    return unquote(raw) if raw else None
