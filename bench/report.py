"""What a benchmark run measured, its medians over rounds, the figures the targets read,
the printed table and the JSON document. Everything here is pure but the printing."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from fixed_rate import FixedRateResult
from targets import FIXED_RATE_TARGETS, THROUGHPUT_TARGETS, Verdict, format_verdict, verdicts
from wrk_load import WrkResult

__all__ = [
    "FixedRateMeasurement",
    "FixedRateSummary",
    "Measurement",
    "Summary",
    "fixed_rate_figures",
    "fixed_rate_verdicts",
    "print_fixed_rate_report",
    "print_throughput_report",
    "summarise",
    "summarise_fixed_rate",
    "throughput_figures",
    "throughput_verdicts",
]

MIXED = "admitd-mixed"
MIXED_TARGET = "admitd-mixed admits flood/alone"


@dataclass(slots=True)
class Measurement:
    """One closed-loop (wrk) run of one variant."""

    variant: str
    wrk: WrkResult  # admitd-mixed: the admits while the flood ran
    unexpected: int  # responses of another class than the variant expects (2xx or denied)
    cpu_cores: dict[str, float]  # process (or wrk, machine, others) -> cores used meanwhile
    authz_cpu_us_per_request: float | None
    edge_stats: dict[str, int]  # edge Envoy counters after the run (connections, requests)
    # admitd-mixed only: "admits_alone" (before the flood, same stack) and "flood".
    concurrent: dict[str, WrkResult] = field(default_factory=dict)


@dataclass(slots=True)
class Summary:
    variant: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    unexpected: int
    runs: list[Measurement] = field(default_factory=list)


@dataclass(slots=True)
class FixedRateMeasurement:
    """One fixed-rate (h2load) run of one variant."""

    variant: str
    load: FixedRateResult
    handler_us: dict[str, float | None]  # admitd's histogram quantiles; {} without admitd
    handler_observations: int
    cpu_cores: dict[str, float]
    authz_cpu_us_per_request: float | None
    edge_stats: dict[str, int]


@dataclass(slots=True)
class FixedRateSummary:
    variant: str
    rate: int
    achieved_rps: float
    latency_ms: dict[str, float | None]  # end to end, medians over rounds
    handler_us: dict[str, float | None]
    failed: int
    unexpected: int
    runs: list[FixedRateMeasurement] = field(default_factory=list)


# ---------------------------------------------------------------- closed loop


def summarise(name: str, runs: list[Measurement]) -> Summary:
    return Summary(
        variant=name,
        requests_per_s=round(statistics.median(r.wrk.requests_per_s for r in runs), 1),
        p50_ms=round(statistics.median(r.wrk.p50_ms for r in runs), 3),
        p99_ms=round(statistics.median(r.wrk.p99_ms for r in runs), 3),
        non_2xx=sum(r.wrk.non_2xx for r in runs),
        unexpected=sum(r.unexpected for r in runs),
        runs=runs,
    )


def throughput_figures(summaries: Mapping[str, Summary]) -> dict[str, float]:
    """Ratios of req/s (the targets read some); variants not run give no ratio."""
    rps = {name: s.requests_per_s for name, s in summaries.items()}
    out: dict[str, float] = {}

    def ratio(key: str, top: str, bottom: str) -> None:
        if rps.get(top) and rps.get(bottom):
            out[key] = rps[top] / rps[bottom]

    ratio("admitd/ceiling", "admitd", "ceiling")
    ratio("admitd/floor", "admitd", "floor")
    ratio("floor/ceiling", "floor", "ceiling")
    for name in rps:
        if name.startswith("admitd-") and name != MIXED:
            ratio(f"{name}/floor", name, "floor")
    ratio("admitd-uds/admitd", "admitd-uds", "admitd")  # Unix socket against loopback TCP
    ratio("admitd/admitd-asyncio", "admitd", "admitd-asyncio")  # uvloop against asyncio
    ratio("admitd-deny/admitd", "admitd-deny", "admitd")  # a denial against an admit
    # Envoy's HTTP ext_authz against its gRPC one: the floors, and admitd on each.
    ratio("http-floor/floor", "http-floor", "floor")
    ratio("admitd-http/admitd", "admitd-http", "admitd")
    ratio("admitd-http-full/admitd-full", "admitd-http-full", "admitd-full")
    ratio("admitd-w2/admitd-w1", "admitd-w2", "admitd-w1")  # 2 workers against 1
    for name in rps:  # --before-src: this build against the older one
        if name.endswith("-before"):
            base = name.removesuffix("-before")
            ratio(f"{base}/{name}", base, name)
    if MIXED in summaries:
        out.update(_mixed_figures(summaries[MIXED].runs))
    return {key: round(value, 3) for key, value in out.items()}


def _mixed_figures(runs: list[Measurement]) -> dict[str, float]:
    """Per run (alone and with the flood in the same stack), then the median over rounds."""
    kept, total, flood = [], [], []
    for run in runs:
        alone = run.concurrent["admits_alone"].requests_per_s
        if not alone:
            continue
        flooding = run.concurrent["flood"].requests_per_s
        kept.append(run.wrk.requests_per_s / alone)
        total.append((run.wrk.requests_per_s + flooding) / alone)
        flood.append(flooding / alone)
    if not kept:
        return {}
    return {
        MIXED_TARGET: statistics.median(kept),
        "admitd-mixed flood/admits alone": statistics.median(flood),
        "admitd-mixed (admits+flood)/admits alone": statistics.median(total),
    }


def throughput_verdicts(figures: Mapping[str, float]) -> list[Verdict]:
    return verdicts(THROUGHPUT_TARGETS, figures)


def print_throughput_report(summaries: Mapping[str, Summary], figures: Mapping[str, float]) -> None:
    print()
    print(f"{'variant':<16} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'unexp.':>7}")
    for s in summaries.values():
        print(
            f"{s.variant:<16} {s.requests_per_s:>10.1f} {s.p50_ms:>8.2f} {s.p99_ms:>8.2f}"
            f" {s.non_2xx:>8} {s.unexpected:>7}"
        )
    if MIXED in summaries:
        runs = summaries[MIXED].runs
        alone = _median(r.concurrent["admits_alone"].requests_per_s for r in runs)
        flood = _median(r.concurrent["flood"].requests_per_s for r in runs)
        print(
            f"{'':<16} admitd-mixed: admits alone {alone:.1f} req/s, with the flood"
            f" {summaries[MIXED].requests_per_s:.1f} req/s, flood {flood:.1f} req/s"
        )
    print()
    for key, value in figures.items():
        print(f"{key:<42} {value:.3f}")
    print()
    for verdict in throughput_verdicts(figures):
        print(format_verdict(verdict))
    if any(s.unexpected for s in summaries.values()):
        print("WARNING: some responses were not what the variant expects; those runs are suspect")


# ---------------------------------------------------------------- fixed rate


def summarise_fixed_rate(name: str, runs: list[FixedRateMeasurement]) -> FixedRateSummary:
    return FixedRateSummary(
        variant=name,
        rate=runs[0].load.rate,
        achieved_rps=round(statistics.median(r.load.achieved_rps for r in runs), 1),
        latency_ms=_median_by_key([r.load.latency_ms for r in runs], 3),
        handler_us=_median_by_key([r.handler_us for r in runs], 1),
        failed=sum(r.load.failed for r in runs),
        unexpected=sum(r.load.unexpected for r in runs),
        runs=runs,
    )


def fixed_rate_figures(summaries: Mapping[str, FixedRateSummary]) -> dict[str, float | None]:
    """Handler quantiles (µs) of each admitd variant and end-to-end p99 differences (ms)."""
    out: dict[str, float | None] = {}
    for name, s in summaries.items():
        for quantile, value in s.handler_us.items():
            out[f"{name} handler {quantile}"] = value

    def added_p99(top: str, bottom: str) -> None:
        if top in summaries and bottom in summaries:
            high = summaries[top].latency_ms.get("p99")
            low = summaries[bottom].latency_ms.get("p99")
            if high is not None and low is not None:
                out[f"{top}-{bottom} end-to-end p99"] = round(high - low, 3)

    added_p99("floor", "ceiling")
    for name in summaries:
        if name.startswith("admitd"):
            added_p99(name, "floor")
    return out


def fixed_rate_verdicts(figures: Mapping[str, float | None]) -> list[Verdict]:
    return verdicts(FIXED_RATE_TARGETS, figures)


def print_fixed_rate_report(
    summaries: Mapping[str, FixedRateSummary], figures: Mapping[str, float | None]
) -> None:
    print()
    print(
        f"{'variant':<16} {'rate':>6} {'got/s':>8} {'e2e p50':>8} {'p90':>7} {'p99 ms':>7}"
        f" {'handler p50':>11} {'p90':>6} {'p99 us':>6} {'failed':>6} {'unexp.':>6}"
    )
    for s in summaries.values():
        e2e, handler = s.latency_ms, s.handler_us
        print(
            f"{s.variant:<16} {s.rate:>6} {s.achieved_rps:>8.1f} {_fmt(e2e.get('p50'), 8, 2)}"
            f" {_fmt(e2e.get('p90'), 7, 2)} {_fmt(e2e.get('p99'), 7, 2)}"
            f" {_fmt(handler.get('p50'), 11, 0)} {_fmt(handler.get('p90'), 6, 0)}"
            f" {_fmt(handler.get('p99'), 6, 0)} {s.failed:>6} {s.unexpected:>6}"
        )
    print()
    for key, value in figures.items():
        print(f"{key:<42} {_fmt(value, 9, 3)}")
    print()
    for verdict in fixed_rate_verdicts(figures):
        print(format_verdict(verdict))
    if any(s.failed or s.unexpected for s in summaries.values()):
        print("WARNING: some requests failed or answered unexpectedly; those numbers are suspect")
    short = [s.variant for s in summaries.values() if s.achieved_rps < 0.95 * s.rate]
    if short:
        print(f"WARNING: below the requested rate (the machine could not keep up): {short}")


# ---------------------------------------------------------------- helpers


def _median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def _median_by_key(rows: list[dict[str, float | None]], digits: int) -> dict[str, float | None]:
    keys = dict.fromkeys(key for row in rows for key in row)
    return {key: _median_or_none([row.get(key) for row in rows], digits) for key in keys}


def _median_or_none(values: list[float | None], digits: int) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), digits) if present else None


def _fmt(value: float | None, width: int, digits: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"
