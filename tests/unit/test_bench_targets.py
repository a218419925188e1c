"""bench/targets.py and bench/report.py: the figures the targets read and their verdicts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# bench/ is a folder of scripts, not a package: import its modules the way run.py does.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from fixed_rate import FixedRateResult
from report import (
    FixedRateMeasurement,
    Measurement,
    fixed_rate_figures,
    fixed_rate_verdicts,
    summarise,
    summarise_fixed_rate,
    throughput_figures,
    throughput_verdicts,
)
from targets import Target, format_verdict, verdicts
from wrk_load import WrkResult, parse_wrk


def wrk(rps: float, requests: int = 1000, non_2xx: int = 0) -> WrkResult:
    return WrkResult(rps, 1.0, 2.0, requests, non_2xx, 0)


def closed(name: str, rps: float, **concurrent: WrkResult) -> Measurement:
    return Measurement(name, wrk(rps), 0, {"others": 0.0}, None, {}, dict(concurrent))


def fixed(name: str, p99_ms: float, handler: dict[str, float | None]) -> FixedRateMeasurement:
    latency: dict[str, float | None] = {"p50": p99_ms / 2, "p90": p99_ms * 0.8, "p99": p99_ms}
    load = FixedRateResult(1000, 999.0, 15000, 0, 0, latency)
    return FixedRateMeasurement(name, load, handler, 15000, {"others": 0.0}, None, {})


def test_at_least_and_at_most_targets() -> None:
    ratio, latency = Target("a/floor", 0.9), Target("p50", 100, at_most=True, unit=" us")
    assert ratio.holds(0.9) and not ratio.holds(0.899)
    assert latency.holds(100) and not latency.holds(100.1)
    assert latency.text == "p50 <= 100 us"


def test_a_figure_the_run_did_not_compute_gives_no_verdict() -> None:
    found = verdicts([Target("a", 1), Target("b", 1), Target("c", 1)], {"a": 2.0, "c": None})
    assert [v.target.figure for v in found] == ["a"]


def test_verdict_lines_say_met_or_not_met() -> None:
    met, missed = verdicts(
        [Target("x/floor", 0.85), Target("y/floor", 0.85)], {"x/floor": 0.9, "y/floor": 0.5}
    )
    assert format_verdict(met) == "target x/floor >= 0.85: MET (0.900)"
    assert format_verdict(missed) == "target y/floor >= 0.85: NOT MET (0.500)"


def test_throughput_targets_are_the_issue_16_bounds() -> None:
    summaries = {
        name: summarise(name, [closed(name, rps)])
        for name, rps in [
            ("ceiling", 4000),
            ("floor", 1000),
            ("admitd", 950),
            ("admitd-session", 890),
            ("admitd-full", 850),
            ("admitd-deny", 790),
        ]
    }
    figures = throughput_figures(summaries)
    assert figures["admitd/floor"] == 0.95
    assert figures["admitd-deny/admitd"] == round(790 / 950, 3)
    outcome = {v.target.figure: v.met for v in throughput_verdicts(figures)}
    assert outcome == {
        "admitd/floor": True,
        "admitd-session/floor": False,  # 0.89 < 0.9
        "admitd-full/floor": True,
        "admitd-deny/floor": False,  # 0.79 < 0.8
    }


def test_the_mixed_ratio_is_per_round_admits_with_the_flood_over_alone() -> None:
    rounds = [
        closed("admitd-mixed", 450, admits_alone=wrk(1000), flood=wrk(400)),
        closed("admitd-mixed", 900, admits_alone=wrk(1000), flood=wrk(100)),
        closed("admitd-mixed", 300, admits_alone=wrk(500), flood=wrk(200)),
    ]
    summaries = {
        "floor": summarise("floor", [closed("floor", 1000)]),
        "admitd-mixed": summarise("admitd-mixed", rounds),
    }
    figures = throughput_figures(summaries)
    assert figures["admitd-mixed admits flood/alone"] == 0.6  # median of 0.45, 0.9, 0.6
    assert figures["admitd-mixed flood/admits alone"] == 0.4  # median of 0.4, 0.1, 0.4
    assert figures["admitd-mixed (admits+flood)/admits alone"] == 1.0  # 0.85, 1.0, 1.0
    assert "admitd-mixed/floor" not in figures  # its req/s are one client's, not the floor's peer
    (verdict,) = throughput_verdicts(figures)
    assert verdict.target.figure == "admitd-mixed admits flood/alone" and not verdict.met


def test_unexpected_answers_add_up_over_rounds() -> None:
    runs = [closed("admitd-deny", 500), closed("admitd-deny", 600)]
    runs[0].unexpected = 3
    summary = summarise("admitd-deny", runs)
    assert summary.unexpected == 3
    assert summary.requests_per_s == 550.0


def test_fixed_rate_figures_and_targets() -> None:
    summaries = {
        "ceiling": summarise_fixed_rate("ceiling", [fixed("ceiling", 2.0, {})]),
        "floor": summarise_fixed_rate("floor", [fixed("floor", 4.0, {})]),
        "admitd": summarise_fixed_rate(
            "admitd", [fixed("admitd", 4.2, {"p50": 45.0, "p90": 80.0, "p99": 200.0})]
        ),
        "admitd-full": summarise_fixed_rate(
            "admitd-full", [fixed("admitd-full", 4.7, {"p50": 90.0, "p90": 150.0, "p99": 320.0})]
        ),
    }
    figures = fixed_rate_figures(summaries)
    assert figures["floor-ceiling end-to-end p99"] == 2.0
    assert figures["admitd-floor end-to-end p99"] == 0.2
    assert figures["admitd-full-floor end-to-end p99"] == 0.7
    assert figures["admitd-full handler p99"] == 320.0
    assert "floor handler p50" not in figures  # the floor has no histogram
    outcome = {v.target.figure: v.met for v in fixed_rate_verdicts(figures)}
    assert outcome == {
        "admitd-full handler p50": True,
        "admitd-full handler p99": False,
        "admitd handler p50": True,
        "admitd-full-floor end-to-end p99": False,
    }


def test_fixed_rate_medians_skip_rounds_without_a_figure() -> None:
    runs = [
        fixed("admitd", 3.0, {"p50": 40.0}),
        fixed("admitd", 5.0, {"p50": None}),
        fixed("admitd", 4.0, {"p50": 60.0}),
    ]
    summary = summarise_fixed_rate("admitd", runs)
    assert summary.latency_ms["p99"] == 4.0
    assert summary.handler_us["p50"] == 50.0


WRK_OUTPUT = """Running 2s test @ http://127.0.0.1:41000/private/bench
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    60.01ms   10.00ms  87.07ms   70.00%
  Latency Distribution
     50%   60.01ms
     75%   65.00ms
     90%   75.00ms
     99%   87.07ms
  1068 requests in 2.01s, 300.00KB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 1068
Requests/sec:    531.20
Transfer/sec:    149.25KB
"""


def test_wrk_output_is_parsed() -> None:
    result = parse_wrk(WRK_OUTPUT)
    assert result == WrkResult(531.2, 60.01, 87.07, 1068, 1068, 3)


def test_wrk_latency_units_are_converted_to_ms() -> None:
    text = WRK_OUTPUT.replace("50%   60.01ms", "50%  850.00us").replace(
        "99%   87.07ms", "99%    1.20s"
    )
    result = parse_wrk(text)
    assert result.p50_ms == pytest.approx(0.85)
    assert result.p99_ms == pytest.approx(1200.0)
