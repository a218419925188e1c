"""admitd's Redis URLs, read once for the server's async client and the tools' sync one."""

from __future__ import annotations

import socket

import pytest
import redis
from redis.cluster import RedisCluster

from admitd.cli import main
from admitd.errors import ConfigError
from admitd.sessions.redis_client import client_from_url
from admitd.sessions.redis_sync import sync_client_from_url
from admitd.sessions.redis_url import ClusterUrl, SentinelUrl, cluster_url, sentinel_url


def test_a_sentinel_url_names_every_sentinel_the_service_and_the_db() -> None:
    parsed = sentinel_url("redis+sentinel://:p%40ss@10.0.0.1:26379,10.0.0.2:26380/relmaster/3")
    assert parsed == SentinelUrl((("10.0.0.1", 26379), ("10.0.0.2", 26380)), "relmaster", 3, "p@ss")
    assert sentinel_url("redis+sentinel://h:1/m").db == 0


def test_a_cluster_url_names_its_seeds_and_tls() -> None:
    assert cluster_url("rediss+cluster://:pw@a:7000,b:7001") == ClusterUrl(
        (("a", 7000), ("b", 7001)), "pw", True
    )
    assert cluster_url("redis+cluster://a:7000").tls is False


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://h:26379",  # no service name
        "redis+sentinel://h/mymaster",  # no port
        "redis+sentinel://h:x/mymaster",
        "redis+sentinel://h:1/mymaster/zero",  # db is not a number
        "redis+cluster://a:7000,b",
        "redis+cluster://:7000",
        "memcached://h:11211",
    ],
)
@pytest.mark.parametrize("build", [client_from_url, sync_client_from_url], ids=["async", "sync"])
def test_a_malformed_url_is_a_config_error_naming_redis_url(url: str, build: object) -> None:
    with pytest.raises(ConfigError) as raised:
        build(url)  # type: ignore[operator]
    assert raised.value.key == "redis_url"


def test_the_sync_client_follows_the_url_kind() -> None:
    plain = sync_client_from_url("redis://127.0.0.1:1/2", decode_responses=True)
    assert type(plain) is redis.Redis
    assert plain.connection_pool.connection_kwargs["db"] == 2
    master = sync_client_from_url("redis+sentinel://127.0.0.1:1/relmaster/4")
    assert master.connection_pool.service_name == "relmaster"  # type: ignore[attr-defined]
    assert master.connection_pool.connection_kwargs["db"] == 4


def test_the_sync_cluster_client_is_a_cluster_client(monkeypatch: pytest.MonkeyPatch) -> None:
    seeds: list[object] = []
    monkeypatch.setattr(RedisCluster, "__init__", lambda self, **kw: seeds.append(kw) or None)
    client = sync_client_from_url("redis+cluster://127.0.0.1:7000,127.0.0.1:7001")
    assert isinstance(client, RedisCluster)
    nodes = seeds[0]["startup_nodes"]  # type: ignore[index]
    assert [(n.host, n.port) for n in nodes] == [("127.0.0.1", 7000), ("127.0.0.1", 7001)]


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    "url",
    ["redis://:secret@127.0.0.1:{port}/0", "redis+sentinel://:secret@127.0.0.1:{port}/relmaster"],
    ids=["standalone", "sentinel"],
)
def test_an_offline_tool_answers_a_dead_redis_in_one_line(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["audit", "verify", "--redis-url", url.format(port=_dead_port())])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("admitd: error: Redis did not answer (")
    assert "Traceback" not in err and "secret" not in err
