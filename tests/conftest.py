"""Shared fixtures: one test PKI per session; redis-servers of a module's or a test's own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.idp.harness import Idp, has_node, start_idp
from tests.integration.redis_server import RedisServer, RedisServers, has_redis_server
from tests.pki_fixtures import PkiSet, build_test_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiSet:
    return build_test_pki(tmp_path_factory.mktemp("pki"))


def _redis_servers(root: Path) -> RedisServers:
    if not has_redis_server():
        pytest.skip("redis-server not installed")
    return RedisServers(root)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """This module's own redis-server on a free port. Per module, not per session: a test
    that stops it (to see admitd fail closed) cannot break another module's tests."""
    with _redis_servers(tmp_path_factory.mktemp("redis")) as servers:
        yield servers.start()


@pytest.fixture
def redis_servers(tmp_path: Path) -> Iterator[RedisServers]:
    """A factory of redis-servers of this test's own, e.g. `start(durable=True)` for one
    whose data survives a restart; all are stopped when the test ends."""
    with _redis_servers(tmp_path / "redis") as servers:
        yield servers


@pytest.fixture
def fresh_redis_server(redis_servers: RedisServers) -> RedisServer:
    """An empty redis-server for this test alone (for tests that stop it or need it empty)."""
    return redis_servers.start()


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Idp]:
    """This module's own OpenID Provider (panva's oidc-provider) on a free loopback port.
    Per module: a test that rotates its keys or restarts it cannot break another module."""
    if not has_node():
        pytest.skip("node/npm not installed: the test IdP (tests/idp) runs on Node.js")
    with start_idp(tmp_path_factory.mktemp("idp")) as provider:
        yield provider


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "routes.yaml").write_text(POLICY)
    return directory


POLICY = """
routes:
  - name: health
    match: {path_exact: /healthz}
    public: true
  - name: admin
    match: {path_prefix: /admin/, methods: [GET, POST]}
    identities:
      spiffe: ["spiffe://test.example/user/alice"]
  - name: batch
    match: {path_prefix: /batch/}
    identities:
      subjects: ["CN=batch-job,O=admitd dev"]
  - name: api
    match: {path_prefix: /api/}
    identities:
      spiffe: ["spiffe://test.example/user/*"]
"""
