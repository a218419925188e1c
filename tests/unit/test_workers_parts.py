"""The supervisor's parts: back-off, a worker's own settings, health answers, the log relay."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from admitd.config import load_config
from admitd.workers import Backoff
from admitd.workers_child import WorkerRole, spool_file, warn_stranded_spools, worker_config
from admitd.workers_health import Answer, liveness, readiness
from admitd.workers_metrics import WorkerView
from admitd.workers_relay import relay_lines


def test_backoff_doubles_to_its_limit_and_resets_after_a_stable_run() -> None:
    backoff = Backoff(first=0.5, limit=4.0, stable=60.0)
    assert [backoff.delay(ran_seconds=1.0) for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff.delay(ran_seconds=60.0) == 0.5  # it ran a minute: not a crash loop
    assert backoff.delay(ran_seconds=0.1) == 1.0


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    (tmp_path / "policies.yaml").write_text("routes: []\n")
    key = tmp_path / "web.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    path = tmp_path / "admitd.yaml"
    path.write_text(
        "policies: policies.yaml\ntls: {trust_bundle: ca.pem}\nworkers: 4\n"
        "redis_url: redis://127.0.0.1:1/0\nweb: {rp_id: localhost, signing_key_file: web.key}\n"
        f"audit: {{spool_file: {tmp_path}/spool.jsonl, spool_max_bytes: 4000000}}\n"
    )
    return path


def test_a_worker_has_its_own_ops_socket_and_spool_and_keeps_everything_else(
    config_file: Path, tmp_path: Path
) -> None:
    config = load_config(config_file, environ={})
    first = worker_config(config, WorkerRole(0, tmp_path / "private", 9))
    third = worker_config(config, WorkerRole(2, tmp_path / "private", 9))
    assert first.metrics_listen == f"unix://{tmp_path}/private/worker-0.sock"
    assert third.metrics_listen == f"unix://{tmp_path}/private/worker-2.sock"
    assert first.audit is not None and third.audit is not None
    assert first.audit.spool_file == tmp_path / "spool.jsonl"  # a former single spool replays
    assert third.audit.spool_file == tmp_path / "spool.worker2.jsonl"
    assert third.audit.spool_max_bytes == 1_000_000  # the configured bound, shared by 4
    # What decides a Check is the same in every worker (web: too: it builds step-up URLs).
    assert third.web == config.web and third.listen == config.listen
    assert WorkerRole(0, tmp_path, 9).serves_pages_and_admin
    assert not WorkerRole(2, tmp_path, 9).serves_pages_and_admin


def test_a_spool_no_worker_will_replay_is_reported(
    config_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_config(config_file, environ={})
    spool_file(tmp_path / "spool.jsonl", 5).write_text('{"digest": "..."}\n')
    spool_file(tmp_path / "spool.jsonl", 6).write_text("")  # drained: nothing to say
    spool_file(tmp_path / "spool.jsonl", 3).write_text('{"digest": "..."}\n')  # worker 3 runs
    warn_stranded_spools(config)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "spool.worker5.jsonl" in warnings[0]
    assert "workers: 6 or more" in warnings[0]


def view(index: int, state: str = "ready", pid: int | None = 100) -> WorkerView:
    return WorkerView(index, pid + index if pid else None, state, restarts=0)


def ready_body(**failing: str) -> dict[str, object]:
    checks = {"policy": {"ok": True, "detail": "version 1"}, "redis": {"ok": True, "detail": ""}}
    checks |= {name: {"ok": False, "detail": detail} for name, detail in failing.items()}
    return {"status": "ready" if not failing else "not_ready", "checks": checks}


def test_ready_when_every_worker_is() -> None:
    status, body = readiness(
        [Answer(view(0), ready_body()), Answer(view(1), ready_body())], draining=False
    )
    assert status == 200 and body["status"] == "ready"
    checks = body["checks"]
    assert isinstance(checks, dict)
    assert set(checks) == {"policy", "redis", "workers"}
    assert checks["workers"] == {"ok": True, "detail": "2 of 2 workers ready"}
    assert body["workers"] == {
        "0": {"state": "ready", "pid": 100, "restarts": 0},
        "1": {"state": "ready", "pid": 101, "restarts": 0},
    }


def test_a_check_failing_in_one_worker_fails_and_names_it() -> None:
    answers = [Answer(view(0), ready_body()), Answer(view(1), ready_body(redis="no PING"))]
    status, body = readiness(answers, draining=False)
    assert status == 503
    assert body["checks"]["redis"] == {"ok": False, "detail": "worker 1: no PING"}  # type: ignore[index]


def test_a_restarting_worker_lowers_capacity_but_a_silent_one_fails() -> None:
    restarting = WorkerView(1, None, "restarting", restarts=3, last_exit=-9)
    status, body = readiness(
        [Answer(view(0), ready_body()), Answer(restarting, None)], draining=False
    )
    assert status == 200
    detail = body["checks"]["workers"]["detail"]  # type: ignore[index]
    assert detail == "1 of 2 workers ready; worker 1 restarting (last exit -9)"
    status, body = readiness([Answer(view(0), ready_body()), Answer(view(1), None)], draining=False)
    assert status == 503 and "worker 1 did not answer" in body["checks"]["workers"]["detail"]  # type: ignore[index]
    status, _ = readiness([Answer(restarting, None)], draining=False)
    assert status == 503  # nothing serves


def test_draining_is_not_ready() -> None:
    status, body = readiness([Answer(view(0), ready_body())], draining=True)
    assert status == 503 and body["checks"]["shutdown"] == {"ok": False, "detail": "draining"}  # type: ignore[index]


def test_alive_unless_a_serving_worker_is_stuck() -> None:
    alive = {"status": "alive"}
    starting = WorkerView(1, 7, "starting", restarts=1)
    assert liveness([Answer(view(0), alive), Answer(starting, None)])[0] == 200
    status, body = liveness([Answer(view(0), alive), Answer(view(1), None)])
    assert status == 503 and body["status"] == "stuck"


async def test_the_relay_passes_whole_lines_only() -> None:
    source = asyncio.StreamReader()
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    relay = asyncio.create_task(relay_lines(source, write_end))

    async def feed(piece: bytes) -> bytes:
        source.feed_data(piece)
        await asyncio.sleep(0.01)
        try:
            return os.read(read_end, 1024)
        except BlockingIOError:
            return b""

    assert await feed(b'{"a":') == b""  # half a line is held back
    assert await feed(b"1}\n{") == b'{"a":1}\n'
    assert await feed(b'"b":2}\n{"c"') == b'{"b":2}\n'
    source.feed_data(b":3}")
    source.feed_eof()
    await relay
    assert os.read(read_end, 1024) == b'{"c":3}\n'  # the last piece, ended at end of file
    os.close(read_end)
    os.close(write_end)
