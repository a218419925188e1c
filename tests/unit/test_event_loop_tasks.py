"""admitd_event_loop_tasks counts the loop's live tasks when scraped."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from admitd.metrics import EventLoopTasks


async def test_the_gauge_follows_the_tasks_alive_at_scrape_time() -> None:
    registry = CollectorRegistry()
    registry.register(EventLoopTasks(asyncio.get_running_loop()))
    before = registry.get_sample_value("admitd_event_loop_tasks")
    assert before is not None and before >= 1  # this test's own task
    stop = asyncio.Event()
    waiting = [asyncio.create_task(stop.wait()) for _ in range(5)]
    assert registry.get_sample_value("admitd_event_loop_tasks") == before + 5
    stop.set()
    await asyncio.gather(*waiting)
    assert registry.get_sample_value("admitd_event_loop_tasks") == before
