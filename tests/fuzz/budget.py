"""How much each fuzz test may do: a bounded number of examples and one second per input.

`ADMITD_FUZZ_EXAMPLES` raises the example count for a longer local run (the CI default keeps
each test to a few seconds). Under CI (`CI=true`) the examples are derandomized. A single input that takes longer than `HANG_SECONDS` twice in a
row is a hang, and fails the test: a scheduling hiccup on a shared machine does not repeat,
a quadratic parser does.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, settings

__all__ = [
    "FUZZ",
    "FUZZ_HEAVY",
    "HANG_SECONDS",
    "bounded",
    "bounded_async",
    "grpc_fuzz_count",
    "grpc_fuzz_seconds",
]

T = TypeVar("T")

HANG_SECONDS = 1.0
EXAMPLES = int(os.environ.get("ADMITD_FUZZ_EXAMPLES", "200"))

FUZZ = settings(
    max_examples=EXAMPLES,
    # CI replays the same examples each run (a new find must not fail someone else's
    # submission at random); locally each run explores new ones.
    derandomize=os.environ.get("CI") == "true",
    deadline=None,  # the per-input bound is `bounded()`, measured on one call, not the whole example
    database=None,  # nothing written into the work tree; a failure prints its reproduction blob
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
        HealthCheck.filter_too_much,
    ],
)

# For targets whose one example costs tens of milliseconds (a whole Check with a JWT, a
# policy compile): half the examples keep the folder within its minute on two cores.
FUZZ_HEAVY = settings(FUZZ, max_examples=max(EXAMPLES // 2, 1))


def grpc_fuzz_count(config: pytest.Config) -> int:
    """Requests the gRPC Check fuzz sends: `--fuzz-count`, else ADMITD_FUZZ_COUNT, else 2,000."""
    option = config.getoption("fuzz_count", default=None)
    return int(option or os.environ.get("ADMITD_FUZZ_COUNT") or 2000)


def grpc_fuzz_seconds(count: int) -> float:
    """Its time bound: ADMITD_FUZZ_SECONDS, else 50 ms a request (here ~1 ms), 2 minutes at least."""
    return float(os.environ.get("ADMITD_FUZZ_SECONDS") or max(120.0, count * 0.05))


def bounded(call: Callable[[], T], what: str = "call") -> T:
    """`call()`, failing the test when it takes over HANG_SECONDS twice in a row."""
    started = time.perf_counter()
    result = call()
    if time.perf_counter() - started > HANG_SECONDS:
        started = time.perf_counter()
        result = call()
        elapsed = time.perf_counter() - started
        assert elapsed <= HANG_SECONDS, f"{what} took {elapsed:.2f} s on one input (a hang)"
    return result


async def bounded_async(call: Callable[[], Awaitable[T]], what: str = "call") -> T:
    """`await call()`, with the same bound as `bounded()`."""
    started = time.perf_counter()
    result = await call()
    if time.perf_counter() - started > HANG_SECONDS:
        started = time.perf_counter()
        result = await call()
        elapsed = time.perf_counter() - started
        assert elapsed <= HANG_SECONDS, f"{what} took {elapsed:.2f} s on one input (a hang)"
    return result
