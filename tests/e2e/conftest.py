from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.stack import EdgeStack, start_edge
from tests.pki_fixtures import PkiSet

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def edge(pki: PkiSet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeStack]:
    from tests.conftest import POLICY

    work = tmp_path_factory.mktemp("edge")
    (work / "policies.yaml").write_text(POLICY)
    stack = start_edge(pki, work / "policies.yaml", work)
    yield stack
    stack.group.stop_all()


@pytest.fixture(scope="session")
def certs(pki: PkiSet) -> dict[str, tuple[Path, Path]]:
    return {
        name: pki.write_leaf(name, getattr(pki, name), pki.client_ca)
        for name in ("alice", "bob", "expired", "revoked", "no_client_eku", "proxy")
    } | {"untrusted": pki.write_leaf("untrusted", pki.untrusted, pki.foreign_root)}
