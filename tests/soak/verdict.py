"""Is admitd's footprint flat after warm-up? A pure function of the samples.

The steady window is every sample from the end of the warm-up to the end of the load;
its first half (A) is the reference, its second half (B) is judged:

- memory: the least-squares slope of RSS is below `slope_mib_per_min` (over B, or over
  the whole steady window when `slope_over_steady`: a cache that clears itself when full
  makes a sawtooth, whose phase tilts a fit over a few periods but not over many), and
  the highest RSS in B is at most the highest in A plus `growth_mib` (a cache that is
  still filling, or a leak, raises both; an allocator's step up and back does not);
- file descriptors other than Redis connections, threads and (when exported) asyncio
  tasks: the last sample is at most the highest in A plus a small margin;
- Redis connections: never above redis-py's pool bound (admitd builds one client, whose
  pool keeps what a burst opened: see tests/soak/sampler.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tests.soak.sampler import Sample

__all__ = ["Limits", "Verdict", "judge", "slope_per_minute"]


@dataclass(frozen=True, slots=True)
class Limits:
    warm_up_s: float
    slope_mib_per_min: float
    growth_mib: float
    slope_over_steady: bool = False
    fd_margin: int = 4
    redis_connection_ceiling: int = 100  # redis-py's default max_connections per pool
    # gRPC's event-engine pool and asyncio's default executor start threads on demand
    # (each bounded); a thread per request or per connection would pass this in seconds.
    thread_margin: int = 4
    task_margin: int = 20  # in-flight Checks are tasks too: the margin covers the rate's jitter


@dataclass
class Verdict:
    slope_mib_per_min: float  # over B
    steady_slope_mib_per_min: float  # over A and B
    judged_slope: str  # "B" or "steady": the one held against the limit
    rss_warm_mib: float  # the first steady sample
    rss_max_a_mib: float
    rss_max_b_mib: float
    rss_end_mib: float
    fds: tuple[int, int]  # other than Redis connections: highest in A, last
    redis_connections: tuple[int, int]  # highest in A, highest overall
    threads: tuple[int, int]
    tasks: tuple[int, int] | None
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        tasks = "n/a" if self.tasks is None else f"{self.tasks[0]} -> {self.tasks[1]}"
        return (
            f"RSS {self.rss_warm_mib:.1f} MiB after warm-up, {self.rss_end_mib:.1f} MiB at the end; "
            f"max A {self.rss_max_a_mib:.1f} / B {self.rss_max_b_mib:.1f} MiB; "
            f"slope B {self.slope_mib_per_min:+.2f} MiB/min, steady window "
            f"{self.steady_slope_mib_per_min:+.2f} (judged: {self.judged_slope}); "
            f"fds {self.fds[0]} -> {self.fds[1]} (+ Redis connections, at most "
            f"{self.redis_connections[1]}); threads {self.threads[0]} -> {self.threads[1]}; "
            f"tasks {tasks}; " + ("FLAT" if self.ok else "NOT FLAT: " + "; ".join(self.failures))
        )


def slope_per_minute(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value), per minute; 0 for fewer than two points."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return 60.0 * cov / var


def judge(samples: Sequence[Sample], limits: Limits) -> Verdict:
    steady = [s for s in samples if s.t >= limits.warm_up_s]
    if len(steady) < 4:
        raise ValueError(f"{len(steady)} samples after the warm-up: the run was too short")
    middle = (steady[0].t + steady[-1].t) / 2
    a = [s for s in steady if s.t < middle]
    b = [s for s in steady if s.t >= middle]
    verdict = Verdict(
        slope_per_minute([(s.t, s.rss_mib) for s in b]),
        slope_per_minute([(s.t, s.rss_mib) for s in steady]),
        "steady" if limits.slope_over_steady else "B",
        steady[0].rss_mib,
        max(s.rss_mib for s in a),
        max(s.rss_mib for s in b),
        steady[-1].rss_mib,
        _first_max_last(a, steady, lambda s: s.other_fds),
        (max(s.redis_connections for s in a), max(s.redis_connections for s in samples)),
        _first_max_last(a, steady, lambda s: s.threads),
        _tasks(a, steady),
    )
    _check(verdict, limits)
    return verdict


def _first_max_last(
    a: Sequence[Sample], steady: Sequence[Sample], value: Callable[[Sample], int]
) -> tuple[int, int]:
    return max(value(s) for s in a), value(steady[-1])


def _tasks(a: Sequence[Sample], steady: Sequence[Sample]) -> tuple[int, int] | None:
    seen = [s.tasks for s in a if s.tasks is not None]
    last = steady[-1].tasks
    return (max(seen), last) if seen and last is not None else None


def _check(v: Verdict, limits: Limits) -> None:
    slope = v.steady_slope_mib_per_min if limits.slope_over_steady else v.slope_mib_per_min
    if slope >= limits.slope_mib_per_min:
        window = "the steady window" if limits.slope_over_steady else "the second half"
        v.failures.append(
            f"RSS still rising: {slope:+.2f} MiB/min over {window} "
            f"(limit {limits.slope_mib_per_min})"
        )
    if v.rss_max_b_mib > v.rss_max_a_mib + limits.growth_mib:
        v.failures.append(
            f"RSS grew: max {v.rss_max_b_mib:.1f} MiB in the second half against "
            f"{v.rss_max_a_mib:.1f} in the first (limit +{limits.growth_mib})"
        )
    if v.redis_connections[1] > limits.redis_connection_ceiling:
        v.failures.append(
            f"{v.redis_connections[1]} Redis connections: above the pool's bound "
            f"({limits.redis_connection_ceiling})"
        )
    for name, pair, margin in (
        ("fds", v.fds, limits.fd_margin),
        ("threads", v.threads, limits.thread_margin),
        ("tasks", v.tasks, limits.task_margin),
    ):
        if pair is not None and pair[1] > pair[0] + margin:
            v.failures.append(f"{name} grew: {pair[0]} -> {pair[1]} (margin {margin})")
