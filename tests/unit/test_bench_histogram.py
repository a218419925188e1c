"""bench/handler_histogram.py: admitd's Check histogram scraped, differenced, and read as
Prometheus' histogram_quantile reads it."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

# bench/ is a folder of scripts, not a package: import its modules the way run.py does.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from handler_histogram import (
    HISTOGRAM,
    buckets_from_text,
    difference,
    histogram_quantile,
)

BOUNDS = (0.000025, 0.00005, 0.000075, 0.0001, 0.00015, 0.0002, 0.0003, 0.0005, 0.001)
INF = math.inf


def exposition(observations: dict[str, list[float]]) -> str:
    """The text admitd's /metrics serves for these observations (per outcome label)."""
    registry = CollectorRegistry()
    histogram = Histogram(HISTOGRAM, "Check time.", ["outcome"], buckets=BOUNDS, registry=registry)
    for outcome, seconds in observations.items():
        for value in seconds:
            histogram.labels(outcome).observe(value)
    return generate_latest(registry).decode()


def test_buckets_are_summed_over_outcomes_and_sorted_with_inf_last() -> None:
    text = exposition({"allow": [0.00003, 0.00012], "deny": [0.00003, 0.002]})
    buckets = buckets_from_text(text)
    assert buckets[0] == (0.000025, 0.0)
    assert dict(buckets)[0.00005] == 2.0  # one allow + one deny
    assert dict(buckets)[0.00015] == 3.0
    assert buckets[-1] == (INF, 4.0)
    assert [bound for bound, _ in buckets] == sorted(bound for bound, _ in buckets)


def test_other_metrics_and_the_sum_and_count_lines_are_not_buckets() -> None:
    text = (
        'other_bucket{le="0.1"} 9.0\n'
        f'{HISTOGRAM}_count{{outcome="allow"}} 5.0\n'
        f'{HISTOGRAM}_bucket{{outcome="allow",le="0.0001"}} 2.0\n'
        f'{HISTOGRAM}_bucket{{le="+Inf",outcome="allow"}} 5.0\n'
    )
    assert buckets_from_text(text) == ((0.0001, 2.0), (INF, 5.0))


def test_nothing_scraped_is_no_buckets() -> None:
    assert buckets_from_text("# HELP nothing here\n") == ()


def test_difference_keeps_only_what_was_observed_between_scrapes() -> None:
    before = buckets_from_text(exposition({"allow": [0.00003] * 5}))
    after = buckets_from_text(exposition({"allow": [0.00003] * 5 + [0.00012] * 3}))
    observed = difference(after, before)
    assert dict(observed)[0.00005] == 0.0
    assert dict(observed)[0.00015] == 3.0
    assert observed[-1] == (INF, 3.0)


def test_a_bucket_absent_before_counts_zero_then() -> None:
    assert difference(((0.001, 4.0), (INF, 6.0)), ()) == ((0.001, 4.0), (INF, 6.0))


def test_quantiles_interpolate_linearly_within_the_bucket() -> None:
    # 50 Checks at 30 µs (25-50 µs bucket) and 50 at 120 µs (100-150 µs bucket).
    buckets = buckets_from_text(exposition({"allow": [0.00003] * 50 + [0.00012] * 50}))
    # rank 50 fills the 25-50 µs bucket exactly: its upper bound.
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.00005)
    # rank 25 is half-way through it.
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.0000375)
    # rank 99: 49 of the 50 in 100-150 µs.
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.0001 + 0.00005 * 49 / 50)


def test_the_first_bucket_interpolates_from_zero() -> None:
    buckets = ((0.000025, 10.0), (0.00005, 10.0), (INF, 10.0))
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.0000125)


def test_a_rank_in_the_inf_bucket_answers_the_highest_finite_bound() -> None:
    buckets = ((0.0001, 1.0), (0.001, 2.0), (INF, 10.0))
    assert histogram_quantile(0.99, buckets) == 0.001


def test_non_monotonic_counts_are_evened_out_as_prometheus_does() -> None:
    # The 0.0002 bucket is behind 0.0001: treated as 8, so the rank-8 quantile stays at 100 µs.
    buckets = ((0.0001, 8.0), (0.0002, 6.0), (0.0003, 10.0), (INF, 10.0))
    assert histogram_quantile(0.8, buckets) == pytest.approx(0.0001)
    assert histogram_quantile(0.9, buckets) == pytest.approx(0.00025)


@pytest.mark.parametrize(
    "buckets",
    [
        (),  # nothing scraped (the floor has no histogram)
        ((INF, 0.0),),  # one bucket
        ((0.0001, 0.0), (INF, 0.0)),  # no observations
        ((0.0001, 3.0), (0.001, 5.0)),  # no +Inf bucket
    ],
)
def test_an_unusable_histogram_has_no_quantile(buckets: tuple[tuple[float, float], ...]) -> None:
    assert histogram_quantile(0.5, buckets) is None


def test_q_must_be_within_zero_and_one() -> None:
    with pytest.raises(ValueError, match="quantile"):
        histogram_quantile(1.01, ((0.001, 1.0), (INF, 1.0)))
