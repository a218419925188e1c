"""bench/variants.py: which variants run (--only, --fixed-rate) and what each expects."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# bench/ is a folder of scripts, not a package: import its modules the way run.py does.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from variants import DENIED_STATUS, DENY_PATH, PATH, chosen_variants, with_before


def names(**kwargs: object) -> list[str]:
    return [v.name for v in chosen_variants(**kwargs)]  # type: ignore[arg-type]


def test_the_default_closed_loop_run_has_every_variant_with_the_full_policy() -> None:
    chosen = names(max_streams=[], only="")
    assert {"admitd-full", "admitd-deny", "admitd-mixed", "admitd-session"} <= set(chosen)
    assert chosen[:3] == ["ceiling", "floor", "admitd"]


def test_only_adds_to_the_base_variants_in_run_order() -> None:
    chosen = names(max_streams=[4], only="admitd-mixed, admitd-ms4")
    assert chosen == ["ceiling", "floor", "admitd", "admitd-mixed", "admitd-ms4"]


def test_the_fixed_rate_base_includes_the_full_policy() -> None:
    assert names(max_streams=[], only="", fixed_rate=True) == [
        "ceiling",
        "floor",
        "admitd",
        "admitd-full",
    ]
    assert "admitd-deny" in names(max_streams=[], only="admitd-deny", fixed_rate=True)


def test_mixed_load_has_no_fixed_rate_form() -> None:
    with pytest.raises(SystemExit, match="admitd-mixed"):
        chosen_variants([], "admitd-mixed", fixed_rate=True)


def test_an_unknown_variant_is_named() -> None:
    with pytest.raises(SystemExit, match="'admitd-nope'"):
        chosen_variants([], "admitd-nope")


def test_what_each_full_policy_variant_requests_and_expects() -> None:
    by_name = {v.name: v for v in chosen_variants([], "")}
    full, deny, mixed = by_name["admitd-full"], by_name["admitd-deny"], by_name["admitd-mixed"]
    assert full.full_policy and full.has_user and full.expected_status == 200
    assert full.path == by_name["admitd-session"].path
    assert deny.path == DENY_PATH and deny.expected_status == DENIED_STATUS
    assert mixed.path == PATH and mixed.expected_status == 200
    assert all(v.needs_redis for v in (full, deny, mixed))
    assert not by_name["admitd"].needs_redis


def test_before_runs_each_grpc_admitd_variant_from_the_older_build_next_to_it() -> None:
    chosen = chosen_variants([], "admitd-full,admitd-http,admitd-w2")
    paired = with_before(chosen, "/tmp/old/server")
    assert [v.name for v in paired] == [
        "ceiling", "floor", "admitd", "admitd-before", "admitd-full", "admitd-full-before",
        "admitd-http", "admitd-w2",
    ]  # fmt: skip
    before = {v.name: v for v in paired}["admitd-full-before"]
    assert before.src == "/tmp/old/server" and before.full_policy and before.session
