"""YAML anchors, aliases and deep nesting are refused fast, with file, line and a fix."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from admitd.config import config_from_text
from admitd.errors import ConfigError
from admitd.policy.loader import load_policies
from admitd.yamlsource import yaml_document_from_text


def alias_bomb(levels: int = 6) -> str:
    """A billion-laughs document: ~250 bytes that expand to 9**levels strings."""
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for level in range(1, levels):
        name, previous = chr(ord("a") + level), chr(ord("a") + level - 1)
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.timeout(10)
def test_an_alias_bomb_in_a_policy_file_is_refused_at_once(tmp_path: Path) -> None:
    (tmp_path / "bomb.yaml").write_text(alias_bomb())
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        load_policies(tmp_path)
    assert time.monotonic() - started < 1.0
    message = str(caught.value)
    assert "bomb.yaml:1" in message and "anchors and aliases are not allowed" in message, message


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param("a: &x 1\n", 1, id="anchor-alone"),
        pytest.param("a: 1\nb: [1, *x]\n", 2, id="alias-alone"),
        pytest.param("base: &b {identities: any}\nroutes:\n  - <<: *b\n", 1, id="merge-key"),
        pytest.param("routes:\n  - &r {name: a}\n", 2, id="anchor-on-a-mapping"),
    ],
)
def test_any_anchor_or_alias_is_refused_with_its_line(text: str, line: int) -> None:
    with pytest.raises(ConfigError, match=rf"p\.yaml:{line}: .*anchors and aliases") as caught:
        yaml_document_from_text(text, "p.yaml")
    assert "write the value out" in str(caught.value)


@pytest.mark.timeout(10)
def test_an_alias_bomb_in_the_config_file_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"admitd\.yaml:1: .*anchors and aliases"):
        config_from_text(alias_bomb(), "admitd.yaml")


@pytest.mark.timeout(10)
def test_an_alias_bomb_in_an_environment_variable_is_refused() -> None:
    bomb = "{" + alias_bomb().strip().replace("\n", ", ") + "}"
    with pytest.raises(ConfigError, match=r"environment variable ADMITD_RISK.*anchors and aliases"):
        config_from_text("log_level: info\n", "admitd.yaml", {"ADMITD_RISK": bomb})


@pytest.mark.parametrize("depth", [200, 5000])
def test_deep_nesting_is_a_config_error_not_a_recursion_error(depth: int) -> None:
    text = "a: " + "[" * depth + "]" * depth + "\n"
    with pytest.raises(ConfigError, match=r"p\.yaml:1: .*nested more than 64 levels"):
        yaml_document_from_text(text, "p.yaml")


def test_ordinary_nesting_and_star_strings_still_load() -> None:
    text = 'a: {b: {c: [1, [2, {d: "*not-an-alias"}]]}}\ne: "&neither"\n'
    doc = yaml_document_from_text(text, "p.yaml")
    assert doc.data == {"a": {"b": {"c": [1, [2, {"d": "*not-an-alias"}]]}}, "e": "&neither"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("a:\n", {"a": None}, id="empty-value"),
        pytest.param("? k\n", {"k": None}, id="key-only"),
        pytest.param("a: !!null\n", {"a": None}, id="tagged-null"),
        pytest.param("a: 10\nb: true\nc: x\n", {"a": 10, "b": True, "c": "x"}, id="scalars"),
    ],
)
def test_scalars_are_typed_as_safe_yaml_types_them(text: str, expected: object) -> None:
    assert yaml_document_from_text(text, "f.yaml").data == expected


@pytest.mark.parametrize("text", ["a: !!int\n", "a: !!int 'x'\n", "a: !!float nope\n"])
def test_a_value_that_cannot_be_read_is_a_config_error_with_its_line(text: str) -> None:
    with pytest.raises(ConfigError, match=r"f\.yaml:1: a: cannot read this value"):
        yaml_document_from_text(text, "f.yaml")


def test_an_empty_value_reads_as_absent_in_a_policy(tmp_path: Path) -> None:
    # Once a traceback from re-parsing the scalar; now `upstream_headers:` is simply unset.
    (tmp_path / "p.yaml").write_text(
        "routes:\n  - name: r\n    identities: any\n    upstream_headers:\n"
    )
    assert load_policies(tmp_path).routes[0].upstream_headers == ()
