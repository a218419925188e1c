"""web/bodies.py: the nesting bound on posted JSON (the handlers' tests post real bodies)."""

from __future__ import annotations

import pytest

from admitd.web.bodies import MAX_JSON_DEPTH, is_nested_within


def _nested(depth: int, kind: str) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = {"k": value} if kind == "object" else [value]
    return value


@pytest.mark.parametrize("kind", ["object", "list"])
def test_the_bound_counts_containers_not_leaves(kind: str) -> None:
    assert is_nested_within(_nested(MAX_JSON_DEPTH, kind), MAX_JSON_DEPTH)
    assert not is_nested_within(_nested(MAX_JSON_DEPTH + 1, kind), MAX_JSON_DEPTH)
    assert is_nested_within("leaf", 0) and is_nested_within({}, 1) and not is_nested_within([], 0)


def test_far_past_the_recursion_limit_it_answers_without_recursing() -> None:
    assert not is_nested_within(_nested(100_000, "list"), MAX_JSON_DEPTH)


def test_a_webauthn_credential_is_well_within() -> None:
    credential = {
        "id": "x", "rawId": "x", "type": "public-key", "clientExtensionResults": {},
        "response": {"clientDataJSON": "x", "authenticatorData": "x", "signature": "x",
                     "transports": ["internal"]},
    }  # fmt: skip
    assert is_nested_within({"credential": credential, "return_to": ""}, 4)
