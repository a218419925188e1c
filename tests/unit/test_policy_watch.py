"""Hot reload runs the load off the event loop, within a time limit, keeping the old policy."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from admitd.core.route import PolicySet
from admitd.policy.loader import load_policies
from admitd.policy.watch import PolicyWatcher
from tests.unit.test_yaml_aliases import alias_bomb

ROUTES = "routes: [{{name: {name}, match: {{path_prefix: /{name}/}}, identities: any}}]\n"


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    (tmp_path / "routes.yaml").write_text(ROUTES.format(name="old"))
    return tmp_path


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Lets a blocked load thread finish when the test ends."""
    event = threading.Event()
    yield event
    event.set()


def change(policies: Path, name: str = "new") -> None:
    (policies / "routes.yaml").write_text(ROUTES.format(name=name) + "# " + "x" * len(name))


class Running:
    """The policy the server would be running, swapped by `apply`."""

    def __init__(self, policies: Path) -> None:
        self.policy = load_policies(policies)

    def apply(self, policy: PolicySet) -> None:
        self.policy = policy

    @property
    def names(self) -> list[str]:
        return [route.name for route in self.policy.routes]


async def ticks_during(work: Callable[[], object]) -> tuple[object, int]:
    """Run `work()` (awaitable) while counting how often the event loop got to run."""
    count = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal count
        while not stop.is_set():
            count += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    try:
        result = await work()  # type: ignore[misc]
    finally:
        stop.set()
        await task
    return result, count


async def test_a_slow_load_runs_off_the_event_loop(policies: Path) -> None:
    def slow_load(path: Path) -> PolicySet:
        time.sleep(0.5)  # a big policy set: the loop must keep answering Checks meanwhile
        return load_policies(path)

    watcher, running = PolicyWatcher(policies, load=slow_load), Running(policies)
    change(policies)
    outcome, ticks = await ticks_during(lambda: watcher.poll(running.apply))
    assert outcome is True and running.names == ["new"]
    assert ticks >= 10  # ~50 possible in 0.5 s; a load on the loop would allow 1 or 2


async def test_a_load_over_the_time_limit_is_refused_and_the_old_policy_stays(
    policies: Path, release: threading.Event
) -> None:
    calls: list[Path] = []

    def stuck_load(path: Path) -> PolicySet:
        calls.append(path)
        release.wait(30)
        return load_policies(path)

    watcher = PolicyWatcher(policies, load=stuck_load, time_limit=0.3)
    running = Running(policies)
    change(policies)
    started = time.monotonic()
    assert await watcher.poll(running.apply) is False
    assert time.monotonic() - started < 2
    assert running.names == ["old"] and "took longer than 0.3 s" in watcher.last_error
    # While the overrunning load still runs, no second one starts (not even on SIGHUP).
    change(policies, "newer")
    assert await watcher.poll(running.apply, force=True) is None
    assert len(calls) == 1
    # Once it has ended (its late result is dropped), the next change loads again.
    release.set()
    outcome = None
    for _ in range(100):  # until the released thread has settled
        await asyncio.sleep(0.05)
        assert running.names == ["old"]
        outcome = await watcher.poll(running.apply)
        if outcome is not None:
            break
    assert outcome is True and running.names == ["newer"]
    assert len(calls) == 2


@pytest.mark.timeout(20)
async def test_an_alias_bomb_is_refused_at_once_and_the_old_policy_stays(policies: Path) -> None:
    watcher, running = PolicyWatcher(policies), Running(policies)
    (policies / "routes.yaml").write_text(alias_bomb())
    started = time.monotonic()
    assert await watcher.poll(running.apply) is False
    assert time.monotonic() - started < 2
    assert running.names == ["old"] and "anchors and aliases" in watcher.last_error


@pytest.mark.parametrize(
    "failure",
    [RecursionError("maximum recursion depth exceeded"), MemoryError(), ValueError("bug")],
    ids=["recursion", "memory", "bug"],
)
async def test_an_unexpected_load_failure_is_a_refusal_not_a_crash(
    policies: Path, failure: BaseException
) -> None:
    def failing_load(path: Path) -> PolicySet:
        raise failure

    watcher, running = PolicyWatcher(policies, load=failing_load), Running(policies)
    change(policies)
    assert await watcher.poll(running.apply) is False
    assert running.names == ["old"] and type(failure).__name__ in watcher.last_error


async def test_a_vanished_policy_directory_is_refused_not_a_crash(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "routes.yaml").write_text(ROUTES.format(name="old"))
    watcher, running = PolicyWatcher(policies), Running(policies)
    (policies / "routes.yaml").unlink()
    policies.rmdir()
    assert await watcher.poll(running.apply) is False
    assert running.names == ["old"]


async def test_forty_concurrent_reloads_load_once(policies: Path) -> None:
    calls: list[Path] = []

    def counted_load(path: Path) -> PolicySet:
        calls.append(path)
        time.sleep(0.1)
        return load_policies(path)

    watcher, running = PolicyWatcher(policies, load=counted_load), Running(policies)
    change(policies)
    outcomes = await asyncio.gather(*(watcher.poll(running.apply, force=True) for _ in range(40)))
    assert outcomes.count(True) == 1 and set(outcomes) == {True, None}
    assert len(calls) == 1 and running.names == ["new"]
