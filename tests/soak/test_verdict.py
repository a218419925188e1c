"""The soak's verdict on synthetic samples: what it calls flat, and what it does not."""

from __future__ import annotations

import os

import pytest

from tests.soak.sampler import TASKS_LINE, Sample, read_sample
from tests.soak.verdict import Limits, judge, slope_per_minute

LIMITS = Limits(warm_up_s=10, slope_mib_per_min=1.0, growth_mib=2.0)


def samples(
    rss_mib: float = 100.0,
    mib_per_min: float = 0.0,
    *,
    fds: int = 20,
    fd_every_s: float = 0.0,
    redis: int = 5,
    tasks: int | None = None,
    seconds: int = 60,
) -> list[Sample]:
    out = []
    for t in range(seconds + 1):
        rss = rss_mib + (mib_per_min * t / 60 if t >= LIMITS.warm_up_s else 0.0)
        extra = int(t / fd_every_s) if fd_every_s and t >= LIMITS.warm_up_s else 0
        jitter = 0.3 if t % 7 == 0 else 0.0  # the allocator's steps up and back
        rss_kib = int((rss + jitter) * 1024)
        out.append(Sample(float(t), rss_kib, fds + redis + extra, redis, 13, 0.0, tasks, t * 100))
    return out


def test_a_flat_run_is_flat() -> None:
    verdict = judge(samples(), LIMITS)
    assert verdict.ok, verdict.failures
    assert abs(verdict.slope_mib_per_min) < 0.5


def test_steady_growth_after_warm_up_is_not_flat() -> None:
    verdict = judge(samples(mib_per_min=3.0), LIMITS)
    assert not verdict.ok
    assert any("still rising" in f for f in verdict.failures)
    assert verdict.slope_mib_per_min == pytest.approx(3.0, abs=0.3)


def test_a_sawtooth_is_judged_over_the_steady_window_when_asked() -> None:
    """A cache that empties itself when full: 12 MiB up over 40 s, then back down."""
    tooth = [
        Sample(s.t, s.rss_kib + int(12 * 1024 * (((s.t + 25) % 40) / 40)), s.fds, 5, 13, 0.0,
               None, 0)
        for s in samples(seconds=300)
    ]  # fmt: skip
    over_b = judge(tooth, LIMITS)
    over_steady = judge(tooth, Limits(10, 1.0, 2.0, slope_over_steady=True))
    assert abs(over_steady.steady_slope_mib_per_min) < abs(over_b.slope_mib_per_min)
    assert over_steady.ok, over_steady.failures
    assert over_steady.judged_slope == "steady"


def test_growth_during_warm_up_only_is_flat() -> None:
    rising = [
        Sample(s.t, s.rss_kib + int(min(s.t, 10) * 2048), s.fds, 5, 13, 0.0, None, 0)
        for s in samples()
    ]
    assert judge(rising, LIMITS).ok


def test_an_fd_leak_is_caught_but_redis_connections_up_to_the_pool_bound_are_not() -> None:
    leaking = judge(samples(fd_every_s=5.0), LIMITS)
    assert any(f.startswith("fds grew") for f in leaking.failures)
    ratchet = samples()
    ratchet[-5:] = [
        Sample(s.t, s.rss_kib, s.fds + 40, s.redis_connections + 40, 13, 0.0, None, 0)
        for s in ratchet[-5:]
    ]
    assert judge(ratchet, LIMITS).ok
    beyond = [
        Sample(s.t, s.rss_kib, s.fds + 200, s.redis_connections + 200, 13, 0.0, None, 0)
        for s in ratchet
    ]
    assert any("Redis connections" in f for f in judge(beyond, LIMITS).failures)


def test_task_growth_is_judged_when_admitd_exports_the_count() -> None:
    grown = samples(tasks=50)
    grown[-1] = Sample(60.0, grown[-1].rss_kib, 25, 5, 13, 0.0, 50 + LIMITS.task_margin + 1, 0)
    assert any(f.startswith("tasks grew") for f in judge(grown, LIMITS).failures)
    assert judge(samples(tasks=None), LIMITS).tasks is None


def test_too_short_a_run_has_no_verdict() -> None:
    with pytest.raises(ValueError, match="too short"):
        judge(samples(seconds=11), LIMITS)


def test_slope_is_per_minute() -> None:
    assert slope_per_minute([(0.0, 1.0), (30.0, 2.0), (60.0, 3.0)]) == pytest.approx(2.0)
    assert slope_per_minute([(5.0, 1.0)]) == 0.0


def test_the_task_gauge_is_read_off_the_metrics_text() -> None:
    text = "# HELP admitd_event_loop_tasks x\nadmitd_event_loop_tasks 37.0\nother 1\n"
    found = TASKS_LINE.search(text)
    assert found is not None and found.group(1) == "37.0"


def test_a_sample_of_this_process_reads_proc() -> None:
    sample = read_sample(os.getpid(), 0.0, 0, redis_port=1, metrics_url=None)
    assert sample.rss_kib > 1024 and sample.fds >= 3 and sample.threads >= 1
    assert sample.redis_connections == 0 and sample.tasks is None and sample.cpu_s > 0
