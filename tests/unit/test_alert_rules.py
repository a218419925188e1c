"""The Prometheus alert rules in deploy/prometheus: valid, and behaving as their tests say."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool (Debian prometheus) not installed"
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60, check=False
    )


def test_rules_are_valid() -> None:
    result = promtool("check", "rules", "admitd-alerts.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", "admitd-alerts.test.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_use_only_metrics_admitd_exports() -> None:
    text = (PROMETHEUS / "admitd-alerts.yaml").read_text()
    assert "device_risk_events_total" in text and "security_events_total" in text
