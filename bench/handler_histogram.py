"""admitd's own handler time, from its Prometheus histogram `admitd_check_duration_seconds`.

The benchmark scrapes /metrics before and after the measured interval, subtracts the
cumulative bucket counts (summed over the `outcome` label) and reads quantiles off the
difference the way Prometheus' `histogram_quantile` does: find the bucket holding the
rank, interpolate linearly between its lower and upper bound; a rank in the +Inf bucket
answers the highest finite bound. So a quantile is only as fine as the buckets around it
(server/admitd/metrics.py). Parsing, differencing and quantiles are pure.
"""

from __future__ import annotations

import math
import re
import urllib.request
from collections.abc import Mapping

__all__ = [
    "HISTOGRAM",
    "Buckets",
    "buckets_from_text",
    "difference",
    "histogram_quantile",
    "scrape",
]

HISTOGRAM = "admitd_check_duration_seconds"

# (upper bound in seconds, cumulative count), sorted by bound, the last one +Inf.
Buckets = tuple[tuple[float, float], ...]

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)")
_LE = re.compile(r'(?:^|,)\s*le="(?P<le>[^"]+)"')


def scrape(url: str, timeout: float = 5.0) -> str:
    """The text exposition at `url` (admitd's metrics_listen, on loopback)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode())


def buckets_from_text(text: str, name: str = HISTOGRAM) -> Buckets:
    """The histogram's cumulative buckets, each bound's counts summed over other labels."""
    counts: dict[float, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match["name"] != f"{name}_bucket":
            continue
        le = _LE.search(match["labels"])
        if le is None:
            continue
        bound = float(le["le"])  # float() reads "+Inf" and Go-style "2.5e-05"
        counts[bound] = counts.get(bound, 0.0) + float(match["value"])
    return tuple(sorted(counts.items()))


def difference(after: Buckets, before: Buckets) -> Buckets:
    """What was observed between two scrapes (a bound absent before counted 0 then)."""
    earlier: Mapping[float, float] = dict(before)
    return tuple((bound, count - earlier.get(bound, 0.0)) for bound, count in after)


def histogram_quantile(q: float, buckets: Buckets) -> float | None:
    """The q-quantile (0..1) as Prometheus' histogram_quantile computes it; None when the
    histogram is empty or unusable (no +Inf bucket, fewer than two buckets)."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be within 0..1, got {q}")
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]):
        return None
    counts = _monotonic([count for _, count in buckets])
    total = counts[-1]
    if total <= 0:
        return None
    rank = q * total
    index = next(i for i, count in enumerate(counts) if count >= rank)
    if index == len(buckets) - 1:  # in the +Inf bucket: the highest finite bound
        return buckets[-2][0]
    upper = buckets[index][0]
    if index == 0:
        if upper <= 0:
            return upper
        lower, below = 0.0, 0.0
    else:
        lower, below = buckets[index - 1][0], counts[index - 1]
    in_bucket = counts[index] - below
    if in_bucket <= 0:  # rank 0 at an empty first bucket
        return lower
    return lower + (upper - lower) * (rank - below) / in_bucket


def _monotonic(counts: list[float]) -> list[float]:
    # Prometheus makes cumulative counts non-decreasing before it interpolates (exporters
    # that read buckets non-atomically can break that); the same here, so both agree.
    fixed: list[float] = []
    for count in counts:
        fixed.append(max(count, fixed[-1]) if fixed else count)
    return fixed
