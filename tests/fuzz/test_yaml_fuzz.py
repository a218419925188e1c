"""Fuzz the policy and config loaders with malformed YAML.

Correct means: loading either succeeds or raises `ConfigError` (the AdmitdError for bad
configuration and policy) that names the file, and for a document that parses, the key (or
at least the line) it objects to; never another exception, never over a second. Two kinds
of malformed input: a valid document with one value replaced, a key removed or an unknown
key added (structure), and the YAML text itself with bytes flipped, cut or spliced (syntax).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from admitd.config import config_from_text
from admitd.errors import ConfigError
from admitd.policy.loader import policy_set_from_documents
from admitd.yamlsource import yaml_document_from_text
from tests.fuzz.budget import FUZZ, FUZZ_HEAVY, bounded
from tests.fuzz.seeds import CONFIG_SEED, POLICY_SEED
from tests.pki_fixtures import PkiSet

pytestmark = pytest.mark.timeout(120)

FILE = "fuzz.yaml"

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=30),
    st.sampled_from(
        ["", "0", "-1", "1e9", "yes", "off", "~", "*", "/", "//x", "[a", "{", "\\", "."]
    ),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node: object, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


@st.composite
def _structural(draw: st.DrawFn, seed: str) -> str:
    """`seed` with one to three values replaced, keys removed or unknown keys added."""
    document = copy.deepcopy(_parsed(seed))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(document)
        path = draw(st.sampled_from(paths))
        parent = document
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "replace", "remove", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(_VALUES)
        elif action == "remove":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10))] = draw(_VALUES)
        else:
            parent.append(draw(_VALUES))
    return yaml.dump(document, Dumper=_DUMPER, allow_unicode=draw(st.booleans()))


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when present: faster


@functools.cache
def _parsed(seed: str) -> Any:
    return yaml.safe_load(seed)


@st.composite
def _syntactic(draw: st.DrawFn, seed: str) -> str:
    """`seed`'s text with bytes flipped, cut, or YAML punctuation and tags spliced in."""
    text = seed
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["splice", "splice", "delete", "truncate", "flip"]))
        if kind == "splice":
            piece = draw(
                st.text(max_size=6)
                | st.sampled_from(
                    [
                        "&a ",
                        "*a",
                        "<<: ",
                        "!!bool ",
                        "!!int ",
                        "!!float ",
                        "!!binary ",
                        "!!timestamp ",
                        "!!python/name:os.system ",
                        "? ",
                        "- ",
                        ": ",
                        "\t",
                        "\n  ",
                        "'",
                        '"',
                        "{",
                        "[",
                        "%YAML 1.1\n",
                        "---\n",
                        "\x00",
                        "\ufeff",
                        "\x85",
                        "0x",
                        "1e400",
                        "9" * 5000,
                        "!!set ",
                        "!!omap ",
                        "!!str ",
                    ]
                )
            )
            text = text[:at] + piece + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 20)) :]
        elif kind == "truncate":
            text = text[:at]
        elif text:
            at = min(at, len(text) - 1)
            text = text[:at] + chr(ord(text[at]) ^ draw(st.integers(1, 127))) + text[at + 1 :]
    return text


def _load_policy(text: str) -> object:
    return policy_set_from_documents([yaml_document_from_text(text, FILE)])


def _load_config(tmp: Path, text: str) -> object:
    return config_from_text(text, str(tmp / FILE), environ={})


def _assert_loads_or_names_the_place(load: Any, text: str, *, structural: bool) -> None:
    try:
        bounded(lambda: load(text), "load")
    except ConfigError as exc:
        assert exc.file is not None and exc.file.endswith(FILE), f"no file named: {exc}"
        if structural:
            assert exc.key or exc.line or "route" in exc.detail, f"no key named: {exc}"


@FUZZ_HEAVY
@given(text=_structural(POLICY_SEED))
def test_policy_with_a_wrong_value_loads_or_names_the_key(text: str) -> None:
    _assert_loads_or_names_the_place(_load_policy, text, structural=True)


@FUZZ
@given(text=_syntactic(POLICY_SEED))
def test_policy_text_mutations_load_or_raise_config_error(text: str) -> None:
    _assert_loads_or_names_the_place(_load_policy, text, structural=False)


@pytest.fixture(scope="module")
def config_dir(pki: PkiSet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files the seed config names, so a mutation is judged on what it changed."""
    directory = tmp_path_factory.mktemp("config")
    (directory / "policies").mkdir()
    (directory / "policies" / "routes.yaml").write_text(POLICY_SEED)
    (directory / "trust-bundle.pem").write_bytes(pki.trust_bundle.read_bytes())
    (directory / "client-ca.crl.pem").write_bytes(pki.crl.read_bytes())
    return directory


@FUZZ_HEAVY
@given(text=_structural(CONFIG_SEED))
def test_config_with_a_wrong_value_loads_or_names_the_key(config_dir: Path, text: str) -> None:
    _assert_loads_or_names_the_place(lambda t: _load_config(config_dir, t), text, structural=True)


@FUZZ
@given(text=_syntactic(CONFIG_SEED))
def test_config_text_mutations_load_or_raise_config_error(config_dir: Path, text: str) -> None:
    _assert_loads_or_names_the_place(lambda t: _load_config(config_dir, t), text, structural=False)


def test_the_seeds_load(config_dir: Path) -> None:
    """The mutations start from valid documents (else every case would be a trivial error)."""
    assert _load_policy(POLICY_SEED) is not None
    assert _load_config(config_dir, CONFIG_SEED) is not None


@pytest.mark.parametrize("tag", ["!!bool", "!!timestamp"])
@pytest.mark.parametrize("load", ["policy", "config"])
def test_a_tag_on_a_value_it_cannot_read_is_a_config_error(
    config_dir: Path, load: str, tag: str
) -> None:
    """`public: !!bool maybe` raises KeyError('maybe'), `!!timestamp maybe` AttributeError,
    from PyYAML's constructors, which yamlsource._scalar did not map: a start-up traceback,
    and a policy reload logged as "policy load failed unexpectedly" without file, line, key."""
    with pytest.raises(ConfigError, match="public" if load == "policy" else "dev_mode") as info:
        if load == "policy":
            _load_policy(POLICY_SEED.replace("public: true", f"public: {tag} maybe"))
        else:
            _load_config(
                config_dir, CONFIG_SEED.replace("dev_mode: false", f"dev_mode: {tag} maybe")
            )
    error = info.value
    assert error.file is not None and error.file.endswith(FILE)
    assert error.line is not None and error.fix, error


def test_a_policies_path_too_long_for_the_file_system_is_a_config_error(config_dir: Path) -> None:
    """`policies: ppp...` (300 characters): config._path's Path.exists() raised
    OSError(ENAMETOOLONG), so `admitd serve` and `admitd check-config` ended in a traceback."""
    text = CONFIG_SEED.replace("policies: policies", "policies: " + "p" * 300)
    with pytest.raises(ConfigError, match="policies"):
        _load_config(config_dir, text)
