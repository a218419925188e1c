"""Policy files: good ones compile; bad ones name the file, line, key and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from admitd.core.route import Unmatched
from admitd.errors import ConfigError
from admitd.policy.loader import load_policies


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_policies_load() -> None:
    policy = load_policies(Path(__file__).parents[2] / "policies")
    assert [r.name for r in policy.routes] == ["healthz", "admin", "api", "reports", "finance"]
    assert policy.unmatched is Unmatched.DENY and len(policy.version) == 12


def test_directory_merges_files_in_name_order(tmp_path: Path) -> None:
    write(tmp_path, "routes: [{name: b, match: {path_prefix: /b}, identities: any}]", "20-b.yaml")
    write(tmp_path, "routes: [{name: a, match: {path_prefix: /a}, public: true}]", "10-a.yaml")
    assert [r.name for r in load_policies(tmp_path).routes] == ["a", "b"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "routes:\n  - name: x\n    matc: {}\n",
            r"p.yaml:3: routes\[0\].matc: unknown key \(allowed keys here: allow_path_parameters, conditions, identities, match, mfa_max_age, name, organisations, public, recovery, risk, roles, scopes, session, shadow, step_up, upstream_headers\)",
            id="unknown-key",
        ),
        pytest.param(
            "routes:\n  - name: x\n    match: {path_prefix: /a}\n",
            r"p.yaml:2: routes\[0\].identities: required for a non-public route",
            id="no-identities",
        ),
        pytest.param(
            "routes:\n  - name: x\n    public: true\n    identities: any\n",
            r"identities: a public route admits everyone",
            id="public-with-identities",
        ),
        pytest.param(
            "routes:\n  - name: x\n    match: {path_regex: '('}\n    public: true\n",
            r"p.yaml:3: routes\[0\].match.path_regex: invalid regular expression",
            id="bad-regex",
        ),
        pytest.param(
            "routes:\n  - name: x\n    match: {methods: [FETCH]}\n    public: true\n",
            r"methods: unknown method 'FETCH'",
            id="bad-method",
        ),
        pytest.param(
            "routes:\n  - name: x\n    match: {path_prefix: a}\n    public: true\n",
            r"path_prefix: a path must start with '/'",
            id="relative-path",
        ),
        pytest.param(
            "routes:\n  - name: x\n    identities: {cert_sha256: [abc]}\n",
            r"cert_sha256: not a SHA-256 hex digest",
            id="bad-fingerprint",
        ),
        pytest.param(
            "routes:\n  - name: x\n    identities: {subjects: ['not a name']}\n",
            r"subjects: not an RFC 4514 name",
            id="bad-subject",
        ),
        pytest.param(
            "unmatched: allow\n",
            r"p.yaml:1: unmatched: unexpected value 'allow' \(one of: deny, any_certificate\)",
            id="bad-unmatched",
        ),
        pytest.param(
            "routes: [{name: x, public: true}, {name: x, public: true}]\n",
            r"route name 'x' is also used",
            id="duplicate-name",
        ),
        pytest.param("routes: [\n", r"p.yaml:2: not valid YAML", id="bad-yaml"),
        pytest.param(
            "routes:\n  - name: x\n    identities: {}\n",
            r"identities: lists no identity",
            id="empty-identities",
        ),
    ],
)
def test_bad_policy_names_file_line_and_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_policies(write(tmp_path, text))


def test_subject_is_normalised(tmp_path: Path) -> None:
    policy = load_policies(
        write(tmp_path, "routes:\n  - name: x\n    identities: {subjects: ['CN=a, O=b']}\n")
    )
    assert policy.routes[0].identities.subjects == frozenset({"CN=a,O=b"})


def test_empty_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no policy files found"):
        load_policies(tmp_path)
