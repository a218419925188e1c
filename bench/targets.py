"""The benchmark's targets (issue 16) and their MET / NOT MET verdicts; pure, no I/O.

A target names one figure the run computes (a ratio, a handler quantile, a latency
difference) and a bound. A figure the run did not compute (a variant left out with
--only) gives no verdict rather than a false NOT MET.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "FIXED_RATE_TARGETS",
    "THROUGHPUT_TARGETS",
    "Target",
    "Verdict",
    "format_verdict",
    "verdicts",
]


@dataclass(frozen=True, slots=True)
class Target:
    figure: str  # the key of the figure in the run's figures (ratios, latencies)
    bound: float
    at_most: bool = False  # False: figure >= bound; True: figure <= bound
    unit: str = ""  # printed after the figure and the bound

    def holds(self, value: float) -> bool:
        return value <= self.bound if self.at_most else value >= self.bound

    @property
    def text(self) -> str:
        return f"{self.figure} {'<=' if self.at_most else '>='} {self.bound:g}{self.unit}"


@dataclass(frozen=True, slots=True)
class Verdict:
    target: Target
    value: float

    @property
    def met(self) -> bool:
        return self.target.holds(self.value)


# Throughput through the real Envoy, as ratios of the always-allow grpc.aio floor.
THROUGHPUT_TARGETS = (
    Target("admitd/floor", 0.95),  # certificate route
    Target("admitd-session/floor", 0.9),  # privileged route, fresh-MFA session
    Target("admitd-jwt/floor", 0.9),  # the same route with a JWT bearer token
    Target("admitd-full/floor", 0.85),  # + device risk and the audit log
    Target("admitd-deny/floor", 0.8),  # every Check denied and audited
    Target("admitd-mixed admits flood/alone", 0.8),  # admits while another client floods
)

# At a fixed request rate (h2load --rps): admitd's own handler time and added latency.
FIXED_RATE_TARGETS = (
    Target("admitd-full handler p50", 100, at_most=True, unit=" us"),
    Target("admitd-full handler p99", 300, at_most=True, unit=" us"),
    Target("admitd handler p50", 50, at_most=True, unit=" us"),
    Target("admitd-full-floor end-to-end p99", 0.5, at_most=True, unit=" ms"),
)


def verdicts(targets: Iterable[Target], figures: Mapping[str, float | None]) -> list[Verdict]:
    """One verdict per target whose figure this run has (missing or None: no verdict)."""
    found = ((t, figures.get(t.figure)) for t in targets)
    return [Verdict(t, value) for t, value in found if value is not None]


def format_verdict(verdict: Verdict) -> str:
    state = "MET" if verdict.met else "NOT MET"
    unit = verdict.target.unit
    return f"target {verdict.target.text}: {state} ({verdict.value:.3f}{unit})"
