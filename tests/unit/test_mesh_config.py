"""`mesh:` and `listen: unix://`: a trusted caller must be one admitd can recognise."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from admitd.config import Config, load_config
from admitd.core.context import Caller
from admitd.errors import ConfigError
from admitd.extauthz.caller import caller_of


def config_with(tmp_path: Path, **settings: Any) -> Config:
    (tmp_path / "policies.yaml").write_text("routes: []\n")
    path = tmp_path / "admitd.yaml"
    doc = {"policies": "policies.yaml", "tls": {"trust_bundle": "ca.pem"}, **settings}
    path.write_text(yaml.safe_dump(doc))
    return load_config(path, environ={})


def socket_path(tmp_path: Path) -> str:
    return f"unix://{tmp_path}/check.sock"


def test_a_sidecar_mesh_config(tmp_path: Path) -> None:
    config = config_with(
        tmp_path,
        listen=socket_path(tmp_path),
        mesh={"trust_domains": ["cluster.local"], "callers": [{"unix_socket": True}]},
    )
    assert config.listen == socket_path(tmp_path)
    assert config.mesh is not None and config.mesh.trust_domains == {"cluster.local"}
    (caller,) = config.mesh.callers
    assert caller.name == "unix-socket" and caller.unix_socket
    assert not config.mesh.require_certificate


@pytest.mark.parametrize(
    ("mesh", "message"),
    [
        ({"callers": [{"unix_socket": True}]}, r"mesh\.trust_domains: required"),
        ({"trust_domains": ["Cluster.Local"], "callers": [{"unix_socket": True}]}, "lower-case"),
        ({"trust_domains": ["td"]}, r"mesh\.callers: required"),
        ({"trust_domains": ["td"], "callers": [{"name": "x"}]}, "needs `unix_socket`"),
        ({"trust_domains": ["td"], "callers": [{"cidrs": ["10.0.0.1/8"]}]}, "not a network"),
        ({"trust_domains": ["td"], "callers": [{"cidr": ["10.0.0.0/8"]}]}, "unknown key"),
        (
            {"trust_domains": ["td"], "callers": [{"principals": ["spiffe://td/gw"]}]},
            "only verified on tls_listen with client_ca",
        ),
    ],
)
def test_mesh_errors_name_the_key_and_fix(
    tmp_path: Path, mesh: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        config_with(tmp_path, listen=socket_path(tmp_path), mesh=mesh)


def test_a_unix_socket_caller_needs_a_unix_listener(tmp_path: Path) -> None:
    mesh = {"trust_domains": ["td"], "callers": [{"unix_socket": True}]}
    with pytest.raises(ConfigError, match=r"unix_socket: listen is not a Unix socket"):
        config_with(tmp_path, mesh=mesh)


@pytest.mark.parametrize(
    ("listen", "message"),
    [
        ("unix:relative.sock", "expected unix:///absolute/path"),
        ("unix:///no/such/dir/check.sock", "is not a directory"),
        ("unix:///" + "a" * 120 + ".sock", "longer than a Unix socket path"),
    ],
)
def test_unix_listen_errors(tmp_path: Path, listen: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_with(tmp_path, listen=listen)


def test_unix_listen_refuses_to_replace_a_file(tmp_path: Path) -> None:
    (tmp_path / "check.sock").write_text("not a socket")
    with pytest.raises(ConfigError, match="exists and is not a socket"):
        config_with(tmp_path, listen=socket_path(tmp_path))


def test_unix_listen_accepts_a_stale_socket(tmp_path: Path) -> None:
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "check.sock"))
    stale.close()
    assert config_with(tmp_path, listen=socket_path(tmp_path)).listen == socket_path(tmp_path)


def _grpc_context(peer: str, auth: dict[str, list[bytes]]) -> Any:
    return SimpleNamespace(peer=lambda: peer, auth_context=lambda: auth)


@pytest.mark.parametrize(
    ("peer", "auth", "expected"),
    [
        ("unix:", {}, Caller("unix")),
        (
            "ipv4:127.0.0.1:51234",
            {"transport_security_type": [b"insecure"]},
            Caller("tcp", "127.0.0.1"),
        ),
        ("ipv6:[::1]:51234", {}, Caller("tcp", "::1")),
        ("ipv6:%5B::1%5D:51234", {}, Caller("tcp", "::1")),  # what gRPC really sends
        (
            "ipv4:10.1.2.3:443",
            {
                "transport_security_type": [b"ssl"],
                "x509_subject_alternative_name": [b"spiffe://td/gw", b"gw.td"],
                # A CN is not a principal: a CA may let its subjects choose it.
                "x509_common_name": [b"spiffe://td/admin"],
            },
            Caller("tls", "10.1.2.3", frozenset({"spiffe://td/gw", "gw.td"})),
        ),
        ("", {}, Caller()),
        ("dns:example:1", {}, Caller()),
    ],
)
def test_the_caller_is_read_from_grpc(
    peer: str, auth: dict[str, list[bytes]], expected: Caller
) -> None:
    assert caller_of(_grpc_context(peer, auth)) == expected


def test_a_trusted_proxy_named_by_its_check_call(tmp_path: Path) -> None:
    proxies = [{"name": "gw", "caller": {"unix_socket": True}, "header": "xfcc"}]
    config = config_with(tmp_path, listen=socket_path(tmp_path), trusted_proxies=proxies)
    (proxy,) = config.trusted_proxies
    assert proxy.name == "gw" and proxy.caller is not None and proxy.caller.unix_socket
    assert proxy.caller.name == "gw"
    with pytest.raises(
        ConfigError, match=r"trusted_proxies\[0\]\.caller\.unix_socket: listen is not"
    ):
        config_with(tmp_path, trusted_proxies=proxies)
    with pytest.raises(ConfigError, match=r"caller\.name: unknown key"):
        config_with(
            tmp_path,
            listen=socket_path(tmp_path),
            trusted_proxies=[{"caller": {"name": "x", "unix_socket": True}}],
        )


MESH = {"trust_domains": ["td"], "callers": [{"name": "sidecar", "unix_socket": True}]}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"mesh": {}}, r"mesh\.trust_domains: mesh: is empty"),
        ({"mesh": None}, r"mesh: is empty"),
        ({"mesh": {"trust_domains": ["a..b"], "callers": [{"unix_socket": True}]}}, "empty label"),
        (
            {
                "mesh": {
                    "trust_domains": ["td"],
                    "callers": [{"unix_socket": True}, {"unix_socket": True}],
                }
            },
            "two callers are named 'unix-socket'",
        ),
        (
            {"mesh": {"trust_domains": ["td"], "callers": [{"cidrs": ["127.0.0.1/32"]}]}},
            "no Check listener is TCP",
        ),
        (
            {"mesh": MESH, "trusted_proxies": [{"caller": {"unix_socket": True}}]},
            r"trusted_proxies\[0\]\.caller: the same Check calls would also be mesh caller 'sidecar'",
        ),
        ({"mesh": {**MESH, "unnamed_callers": "allow"}}, "unexpected value 'allow'"),
    ],
)
def test_careless_mesh_settings_are_refused(
    tmp_path: Path, settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        config_with(tmp_path, listen=socket_path(tmp_path), **settings)


def test_a_network_of_every_address_is_refused(tmp_path: Path) -> None:
    for everyone in ("0.0.0.0/0", "::/0"):
        mesh = {"trust_domains": ["td"], "callers": [{"cidrs": [everyone]}]}
        with pytest.raises(ConfigError, match="every address"):
            config_with(tmp_path, mesh=mesh)


async def test_the_caller_over_real_grpc_ipv6_loopback() -> None:
    """gRPC's own peer strings, not hand-written ones: IPv6 loopback is recognised."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from admitd.certs.callers import CheckCaller

    seen: list[Caller] = []

    class Health(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
        async def Check(
            self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
        ) -> health_pb2.HealthCheckResponse:
            seen.append(caller_of(context))
            return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(Health(), server)
    port = server.add_insecure_port("[::1]:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"[::1]:{port}") as channel:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    finally:
        await server.stop(0)
    (caller,) = seen
    assert (caller.transport, caller.address) == ("tcp", "::1")
    loopback = CheckCaller("lo", networks=(ipaddress.ip_network("::1/128"),))
    assert loopback.recognises(caller)
