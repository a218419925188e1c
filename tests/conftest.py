"""Shared fixtures: one test PKI per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pki_fixtures import PkiSet, build_test_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiSet:
    return build_test_pki(tmp_path_factory.mktemp("pki"))


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
