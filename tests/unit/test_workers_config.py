"""`workers:` and `admitd serve --workers`: values, `auto`, and what several workers need."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from admitd.cli import main
from admitd.config import load_config
from admitd.errors import ConfigError
from admitd.workers import worker_needs
from admitd.workers_config import (
    MAX_WORKERS,
    WorkerNeeds,
    _cgroup_cpu_quota,
    usable_cpus,
    workers_from_text,
)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    (tmp_path / "policies.yaml").write_text("routes: []\n")
    path = tmp_path / "admitd.yaml"
    path.write_text("policies: policies.yaml\ntls:\n  trust_bundle: ca.pem\n")
    return path


def with_lines(config_file: Path, *lines: str) -> Path:
    config_file.write_text(config_file.read_text() + "".join(f"{line}\n" for line in lines))
    return config_file


def test_one_worker_by_default(config_file: Path) -> None:
    assert load_config(config_file, environ={}).workers == 1


@pytest.mark.parametrize("count", [1, 2, MAX_WORKERS])
def test_a_number_of_workers(config_file: Path, count: int) -> None:
    assert load_config(with_lines(config_file, f"workers: {count}"), environ={}).workers == count


def test_auto_is_the_cpus_this_process_may_use(config_file: Path) -> None:
    config = load_config(with_lines(config_file, "workers: auto"), environ={})
    assert config.workers == min(usable_cpus(), MAX_WORKERS)
    assert usable_cpus() <= len(os.sched_getaffinity(0))


def test_the_environment_sets_workers_too(config_file: Path) -> None:
    assert load_config(config_file, environ={"ADMITD_WORKERS": "3"}).workers == 3


@pytest.mark.parametrize(
    "value", ["0", "-1", str(MAX_WORKERS + 1), "many", "2.5", "true", "[2]"], ids=repr
)
def test_a_bad_value_names_the_key_and_the_fix(config_file: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"admitd.yaml:4: workers: expected a number") as error:
        load_config(with_lines(config_file, f"workers: {value}"), environ={})
    assert error.value.fix is not None and "auto" in error.value.fix


def test_a_unix_socket_cannot_be_shared(config_file: Path, tmp_path: Path) -> None:
    with_lines(config_file, f"listen: unix://{tmp_path}/check.sock", "workers: 2")
    with pytest.raises(ConfigError, match=r"workers: 2 workers cannot share a Unix socket"):
        load_config(config_file, environ={})


def test_pages_without_redis_would_split_the_sessions(config_file: Path) -> None:
    needs = WorkerNeeds(unix_listen=False, has_redis=False, writes_sessions=True)
    with pytest.raises(ConfigError, match=r"--workers: .*own sessions in memory") as error:
        workers_from_text("2", needs)
    assert error.value.fix == "set redis_url, or workers: 1"
    with_redis = replace(needs, has_redis=True)
    assert workers_from_text("2", with_redis) == 2
    assert workers_from_text("1", needs) == 1  # one process: nothing to share


def test_certificate_only_configs_need_no_redis(config_file: Path) -> None:
    config = load_config(with_lines(config_file, "workers: 4"), environ={})
    assert config.workers == 4 and config.redis_url is None


@pytest.mark.parametrize("text", ["0", "auto2", "", "1e3"])
def test_the_flag_refuses_what_the_config_refuses(text: str) -> None:
    needs = WorkerNeeds(unix_listen=False, has_redis=False, writes_sessions=False)
    with pytest.raises(ConfigError, match=r"--workers: expected a number of workers"):
        workers_from_text(text, needs)


def test_the_flag_checks_the_config_it_overrides(config_file: Path, tmp_path: Path) -> None:
    config = load_config(with_lines(config_file, f"listen: unix://{tmp_path}/c.sock"), environ={})
    with pytest.raises(ConfigError, match=r"--workers: 3 workers cannot share a Unix socket"):
        workers_from_text("3", worker_needs(config))


def test_serve_reports_a_bad_flag_and_exits_2(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--config", str(config_file), "--workers", "none"]) == 2
    assert "--workers: expected a number of workers, got 'none'" in capsys.readouterr().err


def test_worker_flags_are_the_supervisors(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--config", str(config_file), "--worker", "0"]) == 2
    assert "--worker is set by admitd's supervisor" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("max 100000", None), ("150000 100000", 2), ("100000 100000", 1), ("50000 100000", 1)],
)
def test_a_cgroup_cpu_quota_caps_auto(tmp_path: Path, cpu_max: str, expected: int | None) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max + "\n")
    assert _cgroup_cpu_quota(path) == expected
    assert _cgroup_cpu_quota(tmp_path / "absent") is None
