"""telemetry_from_request: every malformed input has a defined outcome."""

from __future__ import annotations

import pytest

from admitd.risk.config import RiskConfig
from admitd.risk.engine import assess
from admitd.risk.model import DeviceTraits, GeoPoint, OrgBaseline, RiskHistory, Signal
from admitd.risk.telemetry import MAX_USER_AGENT, telemetry_from_request, traits_from_user_agent

SAFARI_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Safari/605.1.15"
)
NOW = 1_700_000_000.0


def telemetry(headers: dict[str, str], ip: str = "192.0.2.10", **kwargs: object):  # type: ignore[no-untyped-def]
    return telemetry_from_request(headers, ip, now=NOW, trusted_geo_headers=False, **kwargs)  # type: ignore[arg-type]


def signals_of(headers: dict[str, str], ip: str = "192.0.2.10") -> tuple[Signal, ...]:
    t = telemetry(headers, ip)
    history = RiskHistory(known_devices=frozenset({"dev-1"}), last_ip="192.0.2.10")
    result = assess(
        t, history, OrgBaseline("acme"), privileged=False, mfa_fresh=True,
        reputation_hit=False, config=RiskConfig(),
    )  # fmt: skip
    return result.signals


def test_a_well_formed_request() -> None:
    t = telemetry({"x-device-id": " dev-1 ", "user-agent": SAFARI_MAC, "x-anomaly-score": "0.2"})
    assert (t.device_id, t.ip, t.anomaly_score, t.at, t.user_agent_ok) == (
        "dev-1",
        "192.0.2.10",
        0.2,
        NOW,
        True,
    )
    assert t.traits == DeviceTraits("macos", "safari")
    assert t.geo is None
    assert signals_of({"x-device-id": "dev-1", "user-agent": SAFARI_MAC}) == ()


@pytest.mark.parametrize(
    "device_id",
    [None, "", "   ", "dev 1", "dev/1", "x" * 129, "dév", "dev\x00"],
    ids=["absent", "empty", "blank", "space", "slash", "too-long", "non-ascii", "nul"],
)
def test_missing_or_malformed_device_id_is_a_new_device(device_id: str | None) -> None:
    headers = {"user-agent": SAFARI_MAC}
    if device_id is not None:
        headers["x-device-id"] = device_id
    assert telemetry(headers).device_id == ""
    assert signals_of(headers) == (Signal.NEW_DEVICE,)


def test_device_id_header_is_configurable() -> None:
    t = telemetry({"x-client-device": "abc"}, device_id_header="x-client-device")
    assert t.device_id == "abc"


@pytest.mark.parametrize("ip", ["", "999.1.1.1", "unix:/tmp/sock", "192.0.2.1:443", "fe80::1%%"])
def test_unparseable_ip_raises_ip_reputation(ip: str) -> None:
    headers = {"x-device-id": "dev-1", "user-agent": SAFARI_MAC}
    assert telemetry(headers, ip).ip == ""
    assert signals_of(headers, ip) == (Signal.IP_REPUTATION,)


def test_ipv4_mapped_ipv6_is_canonicalised() -> None:
    assert telemetry({}, "::ffff:192.0.2.10").ip == "192.0.2.10"
    assert telemetry({}, "2001:DB8:0::1").ip == "2001:db8::1"


def test_a_64_kib_user_agent_is_cut_and_raises_missing_user_agent() -> None:
    headers = {"x-device-id": "dev-1", "user-agent": SAFARI_MAC + "A" * 65_536}
    t = telemetry(headers)
    assert len(t.user_agent) == MAX_USER_AGENT
    assert t.user_agent_ok is False
    assert t.traits == DeviceTraits()  # not trusted for the baseline either
    assert signals_of(headers) == (Signal.MISSING_USER_AGENT,)


@pytest.mark.parametrize("ua", [None, "", "   ", "Mozilla\x00/5.0", "Mozilla\r\nX-Evil: 1"])
def test_absent_or_control_character_user_agent(ua: str | None) -> None:
    headers = {"x-device-id": "dev-1"}
    if ua is not None:
        headers["user-agent"] = ua
    t = telemetry(headers)
    assert t.user_agent_ok is False
    assert not any(c in t.user_agent for c in "\x00\r\n")
    assert signals_of(headers) == (Signal.MISSING_USER_AGENT,)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("0", 0.0),
        ("0.95", 0.95),
        ("1", 1.0),
        ("abc", 1.0),
        ("nan", 1.0),
        ("-0.1", 1.0),
        ("7", 1.0),
        ("inf", 1.0),
    ],
)
def test_anomaly_score_parsing(value: str | None, expected: float | None) -> None:
    headers = {} if value is None else {"x-anomaly-score": value}
    assert telemetry(headers).anomaly_score == expected


def test_geo_headers_only_when_trusted() -> None:
    headers = {"x-geo-latitude": "48.85", "x-geo-longitude": "2.35", "x-geo-country": "FR"}
    assert telemetry(headers).geo is None
    trusted = telemetry_from_request(headers, "192.0.2.1", now=NOW, trusted_geo_headers=True)
    assert trusted.geo == GeoPoint(48.85, 2.35, "FR")


@pytest.mark.parametrize(
    ("ua", "os_family", "browser"),
    [
        (SAFARI_MAC, "macos", "safari"),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36 Edg/124.0",
            "windows",
            "edge",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
            "windows",
            "chrome",
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
            "linux",
            "firefox",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0 Mobile/15E148 Safari/604.1",
            "ios",
            "chrome",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36",
            "android",
            "chrome",
        ),
        ("curl/8.5.0", "", ""),
    ],
    ids=[
        "safari-mac",
        "edge",
        "chrome-win",
        "firefox-linux",
        "chrome-ios",
        "chrome-android",
        "curl",
    ],
)
def test_traits_from_user_agent(ua: str, os_family: str, browser: str) -> None:
    assert traits_from_user_agent(ua) == DeviceTraits(os_family, browser)
