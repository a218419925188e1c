"""The `risk:` config section: defaults, overrides, and errors naming file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from admitd.errors import ConfigError
from admitd.fields import Fields
from admitd.risk.config import SECTION_KEYS, LevelThresholds, RiskConfig, risk_config_from_fields
from admitd.risk.model import Signal
from admitd.yamlsource import yaml_document_from_text


def load(text: str, file: str = "/etc/admitd/admitd.yaml") -> RiskConfig:
    doc = yaml_document_from_text(text, file)
    assert isinstance(doc.data, dict)
    return risk_config_from_fields(Fields(doc, ("risk",), doc.data.get("risk"), SECTION_KEYS))


def test_defaults() -> None:
    config = load("risk: {}\n")
    assert config == RiskConfig()
    assert config.impossible_travel_kmh == 900
    assert config.device_id_header == "x-device-id"
    assert config.levels == LevelThresholds(20, 50, 80)


def test_everything_set() -> None:
    config = load(
        """
risk:
  signals:
    new_device: {weight: 25}
    anomaly_score: {weight: 45, threshold: 0.9}
    baseline_deviation: {threshold: 0.3}
  levels: {medium: 10, high: 40, critical: 70}
  organisations:
    bank: {levels: {high: 30}}
  impossible_travel_kmh: 1000
  reputation_files: [lists/drop.txt, /abs/firehol.netset]
  mmdb_file: geo/City.mmdb
  trusted_geo_headers: true
  device_id_header: X-Client-Device
  telemetry_retention_seconds: 604800
"""
    )
    assert config.weights[Signal.NEW_DEVICE] == 25
    assert config.weights[Signal.IP_REPUTATION] == 50  # default kept
    assert (config.anomaly_threshold, config.baseline_threshold) == (0.9, 0.3)
    assert config.levels == LevelThresholds(10, 40, 70)
    assert config.levels_for("bank") == LevelThresholds(10, 30, 70)  # inherits the others
    assert config.levels_for("acme") == config.levels
    assert config.reputation_files == (
        Path("/etc/admitd/lists/drop.txt"),
        Path("/abs/firehol.netset"),
    )
    assert config.mmdb_file == Path("/etc/admitd/geo/City.mmdb")
    assert config.trusted_geo_headers is True
    assert config.device_id_header == "x-client-device"
    assert config.telemetry_retention_seconds == 604_800


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("risk: {signals: {new_device: {threshold: 1}}}", "risk.signals.new_device.threshold"),
        ("risk: {signals: {bogus: {weight: 1}}}", "risk.signals.bogus"),
        (
            "risk: {signals: {anomaly_score: {threshold: 1.5}}}",
            "risk.signals.anomaly_score.threshold",
        ),
        ("risk: {signals: {ip_reputation: {weight: -1}}}", "risk.signals.ip_reputation.weight"),
        ("risk: {levels: {medium: 60, high: 50}}", "risk.levels.medium"),
        (
            "risk: {organisations: {bank: {levels: {critical: 10}}}}",
            "risk.organisations.bank.levels.medium",
        ),
        ("risk: {organisations: [bank]}", "risk.organisations"),
        ("risk: {impossible_travel_kmh: 0}", "risk.impossible_travel_kmh"),
        ("risk: {device_id_header: 'x device'}", "risk.device_id_header"),
        ("risk: {telemetry_retention_seconds: 5}", "risk.telemetry_retention_seconds"),
        ("risk: {colour: blue}", "risk.colour"),
    ],
)
def test_errors_name_the_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(text + "\n")
    assert info.value.key == key
    assert info.value.file == "/etc/admitd/admitd.yaml"
