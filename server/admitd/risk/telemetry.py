"""Device telemetry of one request, from its headers and the source address Envoy saw.

Every malformed input has a defined outcome, and none of them is "no signal":
a missing or malformed device ID becomes "" (raises new_device), an unparseable
source IP becomes "" (raises ip_reputation), an absent, oversized or control-character
user agent is marked not usable (raises missing_user_agent; an oversized one is kept
truncated for the telemetry record), an unreadable anomaly score counts as 1.0.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping

from admitd.risk.geo import GeoLocator, geo_from_headers
from admitd.risk.model import DeviceTraits, Telemetry

__all__ = [
    "MAX_USER_AGENT",
    "device_id_from_header",
    "ip_from_source",
    "telemetry_from_request",
    "traits_from_user_agent",
]

MAX_USER_AGENT = 1024  # real browsers send < 300 characters
_DEVICE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# First match wins, so the more specific tokens come first (Edge says "Chrome" too,
# Chrome says "Safari", iOS says "Mac OS X", Android says "Linux").
_OS_RULES = (
    ("ios", re.compile(r"iPhone|iPad|iPod")),
    ("android", re.compile(r"Android")),
    ("chromeos", re.compile(r"CrOS")),
    ("windows", re.compile(r"Windows")),
    ("macos", re.compile(r"Mac OS X|Macintosh")),
    ("linux", re.compile(r"Linux|X11")),
)
_BROWSER_RULES = (
    ("edge", re.compile(r"Edg(e|A|iOS)?/")),
    ("opera", re.compile(r"OPR/|Opera")),
    ("firefox", re.compile(r"Firefox/|FxiOS/")),
    ("chrome", re.compile(r"Chrome/|CriOS/|Chromium/")),
    ("safari", re.compile(r"Safari/")),
)


def telemetry_from_request(
    headers: Mapping[str, str],
    source_ip: str,
    *,
    now: float,
    trusted_geo_headers: bool,
    device_id_header: str = "x-device-id",
    anomaly_score_header: str = "x-anomaly-score",
    locator: GeoLocator | None = None,
) -> Telemetry:
    """`headers` with lower-case names, as Envoy passes them. Geo comes from `locator`
    when given (it prefers its database), else from the edge headers when trusted."""
    user_agent, user_agent_ok = _user_agent(headers.get("user-agent"))
    ip = ip_from_source(source_ip)
    if locator is not None:
        geo = locator.locate(ip, headers) if ip else None
    else:
        geo = geo_from_headers(headers) if trusted_geo_headers else None
    return Telemetry(
        device_id=device_id_from_header(headers.get(device_id_header)),
        user_agent=user_agent,
        ip=ip,
        geo=geo,
        anomaly_score=_anomaly_score(headers.get(anomaly_score_header)),
        at=now,
        user_agent_ok=user_agent_ok,
        traits=traits_from_user_agent(user_agent) if user_agent_ok else DeviceTraits(),
    )


def device_id_from_header(value: str | None) -> str:
    """The device ID, or "" when absent or not 1-128 of `A-Za-z0-9._:-`."""
    if value is None:
        return ""
    value = value.strip()
    return value if _DEVICE_ID.fullmatch(value) else ""


def ip_from_source(source_ip: str) -> str:
    """The canonical text of the address ("" if unparseable); IPv4-mapped IPv6 -> IPv4."""
    try:
        address = ipaddress.ip_address(source_ip.strip())
    except ValueError:
        return ""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def traits_from_user_agent(user_agent: str) -> DeviceTraits:
    """Coarse OS and browser family ("" when unrecognised): enough for a baseline."""
    os_family = next((name for name, rule in _OS_RULES if rule.search(user_agent)), "")
    browser = next((name for name, rule in _BROWSER_RULES if rule.search(user_agent)), "")
    return DeviceTraits(os_family, browser)


def _user_agent(value: str | None) -> tuple[str, bool]:
    if value is None or not value.strip():
        return "", False
    if len(value) > MAX_USER_AGENT:
        # Kept (cut) for the telemetry record, but not trusted for fingerprinting.
        return _CONTROL.sub("?", value[:MAX_USER_AGENT]), False
    if _CONTROL.search(value):
        return _CONTROL.sub("?", value), False
    return value, True


def _anomaly_score(value: str | None) -> float | None:
    """Scores are 0..1; a present but unreadable one is treated as the worst (1.0)."""
    if value is None:
        return None
    try:
        score = float(value[:32])
    except ValueError:
        return 1.0
    return score if math.isfinite(score) and 0.0 <= score <= 1.0 else 1.0
