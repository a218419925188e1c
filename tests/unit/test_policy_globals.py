"""Policy globals (`unmatched`, `require_https`) come from one file; an empty policy set is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from admitd.core.route import Unmatched
from admitd.errors import ConfigError
from admitd.policy.loader import load_policies

ROUTE = "routes: [{{name: {name}, match: {{path_prefix: /{name}/}}, identities: any}}]\n"


def write(directory: Path, name: str, text: str) -> None:
    (directory / name).write_text(text)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param("unmatched: deny\n", "unmatched: any_certificate\n", id="unmatched-loosened"),
        pytest.param("require_https: true\n", "require_https: false\n", id="https-loosened"),
        pytest.param("unmatched: deny\n", "require_https: true\n", id="split-across-files"),
        pytest.param("require_https: true\n", "require_https: true\n", id="same-value-twice"),
    ],
)
def test_a_second_file_setting_globals_is_refused_naming_both(
    tmp_path: Path, first: str, second: str
) -> None:
    write(tmp_path, "10-base.yaml", first + ROUTE.format(name="a"))
    write(tmp_path, "20-team.yaml", second + ROUTE.format(name="b"))
    with pytest.raises(ConfigError) as caught:
        load_policies(tmp_path)
    message = str(caught.value)
    assert "20-team.yaml" in message and "10-base.yaml" in message, message
    assert "only one policy file may set" in message


def test_globals_from_the_one_file_that_sets_them(tmp_path: Path) -> None:
    write(tmp_path, "10-routes.yaml", ROUTE.format(name="a"))
    write(tmp_path, "20-globals.yaml", "unmatched: any_certificate\nrequire_https: false\n")
    policy = load_policies(tmp_path)
    assert (policy.unmatched, policy.require_https) == (Unmatched.ANY_CERTIFICATE, False)


def test_without_globals_the_strict_defaults_hold(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", ROUTE.format(name="a"))
    write(tmp_path, "b.yaml", ROUTE.format(name="b"))
    policy = load_policies(tmp_path)
    assert (policy.unmatched, policy.require_https) == (Unmatched.DENY, True)


@pytest.mark.parametrize(
    "texts",
    [
        pytest.param(["routes: []\n"], id="empty-list"),
        pytest.param(["unmatched: any_certificate\n"], id="globals-only"),
        pytest.param(["", "# nothing yet\n"], id="empty-files"),
        pytest.param(["defaults: {identities: any}\nroutes: []\n", "routes: []\n"], id="two-empty"),
    ],
)
def test_a_policy_set_without_routes_is_refused(tmp_path: Path, texts: list[str]) -> None:
    for number, text in enumerate(texts):
        write(tmp_path, f"{number}.yaml", text)
    with pytest.raises(ConfigError, match=r"no routes") as caught:
        load_policies(tmp_path)
    assert str(tmp_path) in str(caught.value)
