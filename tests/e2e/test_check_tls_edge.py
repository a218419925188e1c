"""Envoy asks admitd over mutual TLS (`tls_listen` + an UpstreamTlsContext): decisions unchanged."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.stack import EdgeStack, start_edge
from tests.pki_fixtures import PkiSet

pytestmark = pytest.mark.e2e

POLICY = """
routes:
  - name: health
    match: {path_exact: /healthz}
    public: true
  - name: api
    match: {path_prefix: /api/}
    identities:
      spiffe: ["spiffe://test.example/user/*"]
"""


@pytest.fixture(scope="module")
def edge(pki: PkiSet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeStack]:
    work = tmp_path_factory.mktemp("check-tls-edge")
    (work / "policies.yaml").write_text(POLICY)
    stack = start_edge(pki, work / "policies.yaml", work, authz_tls=True)
    yield stack
    stack.group.stop_all()


def test_checks_over_mutual_tls_admit_and_refuse_as_before(edge: EdgeStack, pki: PkiSet) -> None:
    alice = pki.write_leaf("alice-tls-edge", pki.alice, pki.client_ca)
    assert edge.get("/healthz").status == 200
    assert edge.get("/api/items", cert=alice).status == 200
    assert edge.get("/api/items").status == 495
