"""bench/fixed_rate.py: h2load's per-request log, nearest-rank quantiles and pacing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# bench/ is a folder of scripts, not a package: import its modules the way run.py does.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from fixed_rate import (
    FixedRateError,
    LoggedRequest,
    clients_for,
    h2load_argv,
    nearest_rank,
    parse_h2load_log,
    result_from_log,
)

# Three rows as h2load 1.52 writes them: start µs since the epoch, status, µs to the end.
LOG = "1796300932250910\t495\t7830\n1796300932250917\t200\t1250\n1796300932250902\t-1\t5000000\n"


def test_log_rows_are_read_in_order_with_failed_streams_kept() -> None:
    assert parse_h2load_log(LOG) == [
        LoggedRequest(1796300932250910, 495, 7830),
        LoggedRequest(1796300932250917, 200, 1250),
        LoggedRequest(1796300932250902, -1, 5000000),
    ]


def test_extra_columns_and_blank_lines_are_ignored() -> None:
    assert parse_h2load_log("\n10\t200\t300\tnew-column\n\n") == [LoggedRequest(10, 200, 300)]


@pytest.mark.parametrize("line", ["10\t200", "10\tok\t300", "garbage"])
def test_a_malformed_row_names_its_line(line: str) -> None:
    with pytest.raises(FixedRateError, match="line 2"):
        parse_h2load_log(f"1\t200\t2\n{line}\n")


def test_nearest_rank_takes_the_smallest_value_covering_the_quantile() -> None:
    values = list(range(1, 101))  # 1..100
    assert nearest_rank(0.5, values) == 50
    assert nearest_rank(0.9, values) == 90
    assert nearest_rank(0.99, values) == 99
    assert nearest_rank(1.0, values) == 100
    assert nearest_rank(0.5, [7.0, 3.0, 5.0]) == 5.0  # unsorted input
    assert nearest_rank(0.99, [4.0]) == 4.0


def test_nearest_rank_of_nothing_is_none_and_q_must_be_a_fraction() -> None:
    assert nearest_rank(0.5, []) is None
    with pytest.raises(ValueError, match="quantile"):
        nearest_rank(0.0, [1.0])
    with pytest.raises(ValueError, match="quantile"):
        nearest_rank(1.5, [1.0])


def test_result_counts_failures_and_unexpected_statuses_apart_from_latency() -> None:
    rows = [LoggedRequest(i, 200, (i + 1) * 1000) for i in range(10)]  # 1..10 ms
    rows += [LoggedRequest(99, -1, 50), LoggedRequest(98, 403, 70_000)]
    result = result_from_log(rows, rate=4, seconds=3.0, expected_status=200)
    assert result.requests == 12
    assert result.failed == 1
    assert result.unexpected == 1
    assert result.achieved_rps == round(11 / 3.0, 1)  # completed, whatever the status
    # Only the expected answers count for latency: the 70 ms 403 is not the p99.
    assert result.latency_ms == {"p50": 5.0, "p90": 9.0, "p99": 10.0}


def test_a_denial_variant_expects_its_denial_status() -> None:
    rows = [LoggedRequest(1, 495, 2000), LoggedRequest(2, 200, 1000)]
    result = result_from_log(rows, rate=1, seconds=1.0, expected_status=495)
    assert result.unexpected == 1
    assert result.latency_ms["p50"] == 2.0


def test_no_expected_answers_gives_no_latency() -> None:
    result = result_from_log([LoggedRequest(1, -1, 10)], rate=1, seconds=1.0, expected_status=200)
    assert result.latency_ms == {"p50": None, "p90": None, "p99": None}
    assert result.achieved_rps == 0.0


@pytest.mark.parametrize(("rate", "clients"), [(1, 1), (100, 1), (101, 2), (300, 3), (1000, 10)])
def test_one_client_per_hundred_requests_per_second(rate: int, clients: int) -> None:
    assert clients_for(rate) == clients


def test_h2load_argv_spreads_the_rate_over_the_clients() -> None:
    argv = h2load_argv("http://127.0.0.1:1/api/bench", rate=1000, duration=15, log_file=Path("l"))
    assert argv[0] == "h2load"
    assert "--h1" in argv
    assert "--clients=10" in argv
    assert "--rps=100" in argv  # per client
    assert "--duration=15" in argv
    assert "--log-file=l" in argv
    assert argv[-1] == "http://127.0.0.1:1/api/bench"


def test_a_rate_that_does_not_divide_gets_a_fractional_per_client_rate() -> None:
    argv = h2load_argv("http://127.0.0.1:1/", rate=250, duration=1)
    assert "--clients=3" in argv
    assert f"--rps={250 / 3:g}" in argv
    assert not any(a.startswith("--log-file") for a in argv)
