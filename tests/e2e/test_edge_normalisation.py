"""Through a real Envoy: host and path variants pick the same route; session credentials stay at the edge."""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.stack import EdgeStack, start_edge
from tests.integration.redis_server import RedisServer, has_redis_server
from tests.pki_fixtures import PkiSet
from tests.redis_sessions import create_session

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not has_redis_server(), reason="redis-server not installed"),
]

COOKIE = "__Host-admitd_session"
POLICY = """
routes:
  - name: secure
    match: {hosts: [secure.example.com]}
    identities: {spiffe: ["spiffe://test.example/user/alice"]}
  - name: corp
    match: {hosts: ["*.corp"]}
    identities: {spiffe: ["spiffe://test.example/user/alice"]}
  - name: account
    match: {path_prefix: /account/}
    identities: any
    session: required
  - name: public
    match: {path_prefix: /public/}
    public: true
  - name: admin
    match: {path_prefix: /admin/}
    identities: {spiffe: ["spiffe://test.example/user/alice"]}
  - name: catch-all
    match: {path_prefix: /}
    public: true
"""


@pytest.fixture(scope="module")
def edge(
    pki: PkiSet, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EdgeStack]:
    work = tmp_path_factory.mktemp("normalisation-edge")
    (work / "policies.yaml").write_text(POLICY)
    stack = start_edge(pki, work / "policies.yaml", work, redis_url=redis_server.url)
    yield stack
    stack.group.stop_all()


@pytest.fixture(scope="module")
def alice(pki: PkiSet) -> tuple[Path, Path]:
    return pki.write_leaf("alice-normalisation", pki.alice, pki.client_ca)


def edge_tls(edge: EdgeStack) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(edge.pki.directory / "root.pem"))


def seen_headers(reply_json: dict[str, object]) -> dict[str, str]:
    headers = reply_json["headers"]
    assert isinstance(headers, dict)
    return headers


@pytest.mark.parametrize(
    "host",
    [
        "secure.example.com",
        "secure.example.com.",
        "secure.example.com.:443",
        "SECURE.Example.COM.",
        "a.corp.",
        "B.CORP.:8443",
    ],
)
def test_host_variants_need_the_host_routes_certificate(edge: EdgeStack, host: str) -> None:
    reply = edge.get("/anything", headers={"host": host})
    assert reply.status == 495, reply.body


def test_trailing_dot_host_gets_the_same_route_as_the_plain_name(
    edge: EdgeStack, alice: tuple[Path, Path]
) -> None:
    reply = edge.get("/anything", cert=alice, headers={"host": "secure.example.com."})
    assert reply.status == 200
    assert seen_headers(reply.json())["x-admitd-route"] == "secure"


@pytest.mark.parametrize("host", ["secure..example.com", "bad_host.example.com", "-x.example"])
def test_invalid_host_is_400(edge: EdgeStack, host: str) -> None:
    reply = edge.get("/public/x", headers={"host": host})
    assert reply.status == 400, reply.body
    if reply.headers.get("content-type") == "application/json":  # else Envoy refused it first
        assert reply.json()["error"]["code"] == "request_malformed"  # type: ignore[index]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/public/%2e%2e;/admin/users", 400),  # Envoy decodes the dots and keeps `..;`
        ("/public/..%3b/admin/users", 400),
        ("/public/..;/admin/users", 495),  # Envoy resolves this spelling itself: /admin/users
        ("/public/..;jsessionid=x/admin/users", 495),
    ],
)
def test_dot_segments_with_parameters_never_pass_the_public_route(
    edge: EdgeStack, path: str, status: int
) -> None:
    reply = edge.get(path)
    assert reply.status == status, reply.body
    assert reply.json()["error"]["code"] in ("request_malformed", "client_certificate_required")  # type: ignore[index]


def test_upstream_never_gets_a_dot_segment_with_parameters(edge: EdgeStack) -> None:
    reply = edge.get("/public/.;/admin/users")
    assert reply.status != 200 or ";" not in str(reply.json()["path"])


def test_semicolon_in_a_segment_is_refused_without_the_route_opt_in(edge: EdgeStack) -> None:
    reply = edge.get("/public/report;v=2")
    assert reply.status == 400
    assert reply.json()["error"]["code"] == "request_malformed"  # type: ignore[index]
    assert edge.get("/public/report").status == 200


def test_encoded_slash_is_refused_by_envoy(edge: EdgeStack) -> None:
    # path_with_escaped_slashes_action: REJECT_REQUEST; admitd would refuse it too.
    assert edge.get("/public/..%2fadmin/users").status == 400


def test_headers_with_underscores_never_reach_the_upstream(
    edge: EdgeStack, alice: tuple[Path, Path]
) -> None:
    # CGI/WSGI upstreams read x_admitd_principal and x-admitd-principal as one name.
    reply = edge.get("/public/x", headers={"x_admitd_principal": "spiffe://forged"})
    assert reply.status == 200
    assert "x_admitd_principal" not in seen_headers(reply.json())


def test_session_cookie_is_removed_and_other_cookies_are_kept(
    edge: EdgeStack, redis_server: RedisServer, alice: tuple[Path, Path]
) -> None:
    token = create_session(redis_server.url, "cookie-user", {"reader"})
    cookies = f"theme=dark; {COOKIE}={token}; lang=en"
    reply = edge.get("/account/me", cert=alice, headers={"cookie": cookies})
    assert reply.status == 200
    seen = seen_headers(reply.json())
    assert token not in str(seen)
    assert seen["cookie"] == "theme=dark; lang=en"
    assert seen["x-admitd-user"] == "cookie-user" and seen["x-admitd-session"]


def test_session_cookie_in_a_repeated_cookie_header_is_removed(
    edge: EdgeStack, redis_server: RedisServer
) -> None:
    # RFC 6265 §5.4 allows one Cookie header; a client may send several over HTTP/1.1.
    token = create_session(redis_server.url, "split-cookie-user", {"reader"})
    connection = http.client.HTTPSConnection(
        "localhost", edge.https_port, context=edge_tls(edge), timeout=10
    )
    try:
        connection.putrequest("GET", "/public/x")
        for cookie in ("a=1", f"{COOKIE}={token}", "b=2"):
            connection.putheader("cookie", cookie)
        connection.endheaders()
        reply = connection.getresponse()
        body = reply.read()
    finally:
        connection.close()
    assert reply.status == 200 and token.encode() not in body
    assert json.loads(body)["headers"]["cookie"] == "a=1; b=2"  # one header, rewritten


def test_session_bearer_token_is_removed(
    edge: EdgeStack, redis_server: RedisServer, alice: tuple[Path, Path]
) -> None:
    token = create_session(redis_server.url, "bearer-user", {"reader"})
    reply = edge.get("/account/me", cert=alice, headers={"authorization": f"Bearer {token}"})
    assert reply.status == 200
    seen = seen_headers(reply.json())
    assert token not in str(seen) and "authorization" not in seen
    assert seen["x-admitd-user"] == "bearer-user"


def test_session_credentials_are_removed_on_routes_that_ignore_sessions(
    edge: EdgeStack, redis_server: RedisServer
) -> None:
    token = create_session(redis_server.url, "public-user", {"reader"})
    reply = edge.get("/public/x", headers={"cookie": f"{COOKIE}={token}"})
    assert reply.status == 200
    assert "cookie" not in seen_headers(reply.json())


def test_other_bearer_tokens_reach_the_upstream(edge: EdgeStack) -> None:
    reply = edge.get("/public/x", headers={"authorization": "Bearer upstream-api-key"})
    assert seen_headers(reply.json())["authorization"] == "Bearer upstream-api-key"
