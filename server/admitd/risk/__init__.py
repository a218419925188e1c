"""Device risk: telemetry, named signals, a score and a level, baselines with dual control.

`engine.assess` is pure; `state`, `baseline`, `reputation` and `geo` are its adapters.
"""

from __future__ import annotations

from admitd.risk.config import SECTION_KEYS, LevelThresholds, RiskConfig, risk_config_from_fields
from admitd.risk.engine import assess
from admitd.risk.model import (
    BaselineAttribute,
    DeviceTraits,
    GeoPoint,
    OrgBaseline,
    RiskAssessment,
    RiskHistory,
    RiskLevel,
    Signal,
    Telemetry,
)

__all__ = [
    "SECTION_KEYS",
    "BaselineAttribute",
    "DeviceTraits",
    "GeoPoint",
    "LevelThresholds",
    "OrgBaseline",
    "RiskAssessment",
    "RiskConfig",
    "RiskHistory",
    "RiskLevel",
    "Signal",
    "Telemetry",
    "assess",
    "risk_config_from_fields",
]
